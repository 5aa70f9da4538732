//! The embedder's errors: model files that cannot be used, inputs over the
//! limits, a full queue, and failures inside the model.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running the embedder.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model could not be fetched.
    #[error(transparent)]
    Source(#[from] quarry_models::ModelsError),
    /// A model file is missing or malformed.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The queue is full: the caller should retry later.
    #[error("the embedding queue is full ({capacity} requests waiting); retry later")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The model threads have stopped (shutdown or a crash).
    #[error("the embedding model is not running")]
    Stopped,
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// candle failed while running the model.
    #[error("embedding model: {0}")]
    Model(#[from] candle_core::Error),
}

impl EmbedError {
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::ModelFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
