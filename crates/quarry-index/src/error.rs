//! The index crate's one error type. Every variant is the server's own
//! failure (user input is validated before it reaches an index); a damaged
//! checkpoint is reported separately so that recovery can rebuild from the
//! store instead of failing.

use std::path::PathBuf;

/// Index errors.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy failed.
    #[error("keyword index: {0}")]
    Keyword(#[from] tantivy::TantivyError),
    /// A file of an index could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Reading the store (the truth) during recovery failed.
    #[error("reading the store: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// A checkpoint exists but cannot be used; the caller rebuilds.
    #[error("damaged checkpoint in {path}: {reason}")]
    Damaged {
        /// The checkpoint's directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn damaged(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Damaged {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
