//! The engine's error: every failure a client can see, classified the way the
//! gRPC edge needs to choose a status code.

use quarry_core::InvalidArgument;
use quarry_embed::EmbedError;
use quarry_generate::GenerateError;
use quarry_index::IndexError;
use quarry_models::ModelsError;
use quarry_store::StoreError;

/// What kind of failure an [`EngineError`] is: what the edges map to a
/// gRPC or HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input.
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// A queue, limit or the disk is full; retry later.
    ResourceExhausted,
    /// Not part of this build.
    Unimplemented,
    /// The client's deadline passed.
    DeadlineExceeded,
    /// The server cannot do it now.
    Unavailable,
    /// A bug or damaged data.
    Internal,
}

/// Every failure of an engine call. Failures of the crates below keep
/// their error (and its chain) as the source; [`EngineError::kind`]
/// classifies them.
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
    /// The store failed.
    #[error("{}", store_message(.0))]
    Store(#[source] StoreError),
    /// An index failed.
    #[error("index: {0}")]
    Index(#[source] IndexError),
    /// The embedding model failed or its queue is full.
    #[error(transparent)]
    Embed(EmbedError),
    /// The generation model failed or its queue is full.
    #[error(transparent)]
    Generate(GenerateError),
    /// A model could not be fetched.
    #[error(transparent)]
    Models(#[from] ModelsError),
}

fn store_message(e: &StoreError) -> String {
    if e.io_kind() == Some(std::io::ErrorKind::StorageFull) {
        format!("the data directory's disk is full: {e}")
    } else {
        e.to_string()
    }
}

impl EngineError {
    /// The kind of failure, for choosing a status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Self::Unimplemented(_) => ErrorKind::Unimplemented,
            Self::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
            Self::Store(e) => match e {
                StoreError::Invalid(_) => ErrorKind::InvalidArgument,
                StoreError::CollectionExists(_) => ErrorKind::AlreadyExists,
                StoreError::CollectionNotFound(_)
                | StoreError::DocumentNotFound { .. }
                | StoreError::RecordNotFound(_) => ErrorKind::NotFound,
                // An I/O failure (disk full, read-only) is the server's
                // state, not a bug: the client may retry elsewhere or later.
                e if e.io_kind() == Some(std::io::ErrorKind::StorageFull) => {
                    ErrorKind::ResourceExhausted
                }
                e if e.is_io() => ErrorKind::Unavailable,
                StoreError::Open { .. }
                | StoreError::RecordKey(_)
                | StoreError::FormatTooNew { .. }
                | StoreError::FormatTooOld { .. } => ErrorKind::Unavailable,
                StoreError::Corrupt(_) | StoreError::Sled(_) => ErrorKind::Internal,
            },
            Self::Index(_) => ErrorKind::Internal,
            Self::Embed(e) => match e {
                EmbedError::QueueFull { .. } => ErrorKind::ResourceExhausted,
                EmbedError::Stopped | EmbedError::Source(_) | EmbedError::ModelFile { .. } => {
                    ErrorKind::Unavailable
                }
                EmbedError::Tokenizer(_) | EmbedError::Model(_) => ErrorKind::Internal,
            },
            Self::Generate(e) => match e {
                GenerateError::InvalidArgument(_) => ErrorKind::InvalidArgument,
                GenerateError::QueueFull { .. } | GenerateError::KvBudget { .. } => {
                    ErrorKind::ResourceExhausted
                }
                GenerateError::Model(_) | GenerateError::Io { .. } => ErrorKind::Unavailable,
                GenerateError::Template(_) | GenerateError::Tokenizer(_) => ErrorKind::Internal,
            },
            Self::Models(_) => ErrorKind::Unavailable,
        }
    }
}

impl From<EmbedError> for EngineError {
    fn from(e: EmbedError) -> Self {
        Self::Embed(e)
    }
}

impl From<GenerateError> for EngineError {
    /// Bad sampling parameters stay an [`InvalidArgument`], naming the field.
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::InvalidArgument(e) => Self::InvalidArgument(e),
            e => Self::Generate(e),
        }
    }
}

impl From<StoreError> for EngineError {
    /// Invalid input found by the store stays an [`InvalidArgument`].
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(e) => Self::InvalidArgument(e),
            e => Self::Store(e),
        }
    }
}

impl From<IndexError> for EngineError {
    fn from(e: IndexError) -> Self {
        Self::Index(e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn lower_errors_keep_their_source_and_are_classified() {
        let e = EngineError::from(StoreError::CollectionNotFound("kb".into()));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.source().is_some());
        assert!(e.to_string().contains("kb"), "{e}");

        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left");
        let e = EngineError::from(StoreError::Sled(sled::Error::Io(full)));
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        assert!(
            e.to_string()
                .starts_with("the data directory's disk is full"),
            "{e}"
        );

        let e = EngineError::from(IndexError::Damaged {
            path: "/x".into(),
            reason: "short".into(),
        });
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.source().is_some());

        let e = EngineError::from(StoreError::Invalid(InvalidArgument::new("id", "bad")));
        assert!(matches!(e, EngineError::InvalidArgument(_)));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
