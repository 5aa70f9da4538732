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
    /// The request's cache could never fit the cache budget, even with
    /// no other sequence running.
    #[error("the prompt and max_new_tokens are {tokens} tokens, whose cache ({needed_mib} MiB) exceeds the generation cache budget of {budget_mib} MiB (--generate-kv-budget-mib); ask for fewer tokens")]
    KvBudget {
        /// Prompt plus max_new_tokens.
        tokens: usize,
        /// Their cache, in MiB.
        needed_mib: usize,
        /// The budget, in MiB.
        budget_mib: usize,
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
