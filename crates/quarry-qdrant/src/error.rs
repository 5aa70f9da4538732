//! The backend's errors, and how each reaches a client: Qdrant out of
//! reach is `Unavailable` naming Qdrant; what Qdrant refuses keeps its
//! meaning where Quarry has the same one (not found, exists, exhausted);
//! a payload Quarry cannot read back is internal.

use quarry_engine::EngineError;

/// An error of the Qdrant backend.
#[derive(Debug, thiserror::Error)]
pub enum QdrantBackendError {
    /// No configured node answered.
    #[error("Qdrant is unavailable (tried {tried}): {source}")]
    Unreachable {
        /// The nodes tried, in order.
        tried: String,
        /// The last node's error.
        #[source]
        source: qdrant_client::QdrantError,
    },
    /// A node answered with an error.
    #[error("Qdrant refused {what}: {message}")]
    Refused {
        /// The operation.
        what: String,
        /// Qdrant's status code.
        code: tonic_code::Code,
        /// Qdrant's message.
        message: String,
    },
    /// Stored data that Quarry cannot read back.
    #[error("Qdrant holds a {what} Quarry cannot read: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it could not be read.
        detail: String,
    },
    /// A setting that cannot work.
    #[error("Qdrant backend: {0}")]
    Config(String),
}

/// gRPC codes without a tonic dependency in this crate's API.
pub mod tonic_code {
    /// The gRPC status codes the backend tells apart.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Code {
        /// NOT_FOUND.
        NotFound,
        /// ALREADY_EXISTS.
        AlreadyExists,
        /// RESOURCE_EXHAUSTED.
        ResourceExhausted,
        /// INVALID_ARGUMENT.
        InvalidArgument,
        /// UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED: the node or the
        /// cluster cannot serve now.
        Unavailable,
        /// Anything else.
        Other,
    }
}

impl From<QdrantBackendError> for EngineError {
    fn from(e: QdrantBackendError) -> Self {
        use tonic_code::Code;
        let text = e.to_string();
        match &e {
            QdrantBackendError::Unreachable { .. } => EngineError::Unavailable(text),
            QdrantBackendError::Refused { code, .. } => match code {
                Code::NotFound => EngineError::NotFound(text),
                Code::AlreadyExists => EngineError::AlreadyExists(text),
                Code::ResourceExhausted => EngineError::ResourceExhausted(text),
                Code::Unavailable => EngineError::Unavailable(text),
                Code::InvalidArgument | Code::Other => EngineError::Internal(text),
            },
            QdrantBackendError::Corrupt { .. } => EngineError::Internal(text),
            QdrantBackendError::Config(_) => EngineError::Unavailable(text),
        }
    }
}
