//! Sentence embeddings on candle: a BERT-family encoder loaded from a
//! sentence-transformers folder (or a plain BERT folder), tokenised exactly
//! as sentence-transformers does, pooled with the attention mask and
//! normalised as the folder's modules say.
//!
//! [`SentenceEmbedder`] is the model (behind the [`Embedder`] trait);
//! [`EmbedQueue`] owns one or more model
//! threads fed by a bounded queue that batches requests by a token budget,
//! so callers on an async runtime never run model code themselves.

mod backend;
mod config;
pub mod coverage;
mod encoder;
mod error;
mod model;
mod queue;

pub use backend::Embedder;
pub use config::{Pooling, SentenceConfig};
pub use coverage::coverage;
pub use encoder::BertConfig;
pub use error::EmbedError;
pub use model::SentenceEmbedder;
pub use queue::{EmbedQueue, QueueConfig};
pub use tokenizers::{Encoding, Tokenizer};

/// Files a sentence-transformers model folder must have, and may have.
pub const MODEL_FILES: quarry_models::FileSet<'static> = quarry_models::FileSet {
    required: &["config.json", "tokenizer.json", "model.safetensors"],
    optional: &[
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "config_sentence_transformers.json",
    ],
};
