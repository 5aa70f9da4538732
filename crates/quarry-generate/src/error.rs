//! The generator's one error type.

/// Generation errors.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The model files cannot be used (missing metadata, unsupported
    /// architecture or vocabulary): the operator's problem.
    #[error("model: {0}")]
    Model(String),
    /// The chat template failed on these messages.
    #[error("chat template: {0}")]
    Template(String),
    /// Tokenizing or detokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A request is invalid (names the field and the limit).
    #[error(transparent)]
    InvalidArgument(#[from] quarry_core::InvalidArgument),
    /// The queue is full; the caller should retry later.
    #[error("the generation queue is full ({capacity} requests waiting); retry later")]
    QueueFull {
        /// Requests that may wait.
        capacity: usize,
    },
    /// Reading the model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}
