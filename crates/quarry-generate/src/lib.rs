//! Text generation: candle decoders (GGUF and safetensors llama/qwen2), the
//! tokenizer built from the model's own metadata, chat templates, sampling,
//! UTF-8-safe streaming and a model thread behind a bounded queue.
//!
//! Empty in this build: grounded generation lands with its own issue, and
//! until then the server answers `Rag.Ask` with UNIMPLEMENTED.
