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
    /// Reading the model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}
