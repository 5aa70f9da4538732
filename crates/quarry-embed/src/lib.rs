//! Sentence embeddings: a candle BERT-family encoder with its tokenizer,
//! pooling and normalisation read from the model folder, model sources
//! (`path:`, `hf:`, `pip:`) with a verified local cache, and a model thread
//! that batches requests by token budget behind a bounded queue.
//!
//! Empty in this build: the embedding capability lands with its own issue,
//! and until then the server answers `Retrieval.Embed` with UNIMPLEMENTED.
