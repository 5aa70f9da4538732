//! The engine's error: every failure a client can see, classified the way the
//! gRPC edge needs to choose a status code.

use quarry_core::InvalidArgument;
use quarry_embed::EmbedError;
use quarry_generate::GenerateError;
use quarry_store::StoreError;

/// Every failure of an engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input; names the field and the rule.
    #[error(transparent)]
    InvalidArgument(#[from] InvalidArgument),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A queue or limit is full; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The capability is not part of this build yet; names it.
    #[error("{0}")]
    Unimplemented(String),
    /// The client's deadline passed; the work was stopped.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The server cannot do it now (storage unwritable, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or damaged data.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<EmbedError> for EngineError {
    fn from(e: EmbedError) -> Self {
        match e {
            EmbedError::QueueFull { .. } => Self::ResourceExhausted(e.to_string()),
            EmbedError::Stopped => Self::Unavailable(e.to_string()),
            EmbedError::Source(_) | EmbedError::ModelFile { .. } => {
                Self::Unavailable(e.to_string())
            }
            EmbedError::Tokenizer(_) | EmbedError::Model(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<GenerateError> for EngineError {
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::InvalidArgument(e) => Self::InvalidArgument(e),
            GenerateError::QueueFull { .. } => Self::ResourceExhausted(e.to_string()),
            GenerateError::Model(_) | GenerateError::Io { .. } => Self::Unavailable(e.to_string()),
            GenerateError::Template(_) | GenerateError::Tokenizer(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(e) => Self::InvalidArgument(e),
            StoreError::CollectionExists(_) => Self::AlreadyExists(e.to_string()),
            StoreError::CollectionNotFound(_)
            | StoreError::DocumentNotFound { .. }
            | StoreError::RecordNotFound(_) => Self::NotFound(e.to_string()),
            // An I/O failure (disk full, read-only) is the server's state, not
            // a bug: the client may retry elsewhere or later.
            e if e.io_kind() == Some(std::io::ErrorKind::StorageFull) => {
                Self::ResourceExhausted(format!("the data directory's disk is full: {e}"))
            }
            e if e.is_io() => Self::Unavailable(e.to_string()),
            StoreError::Open { .. }
            | StoreError::RecordKey(_)
            | StoreError::FormatTooNew { .. }
            | StoreError::FormatTooOld { .. } => Self::Unavailable(e.to_string()),
            StoreError::Corrupt(_) | StoreError::Sled(_) => Self::Internal(e.to_string()),
        }
    }
}
