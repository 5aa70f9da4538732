//! The store's error type: user errors (missing or duplicate things, bad
//! input) and internal ones (I/O, corruption, format mismatch).

use std::path::PathBuf;

use quarry_core::InvalidArgument;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The records key does not fit this data directory (wrong, missing,
    /// or given for plaintext records).
    #[error("{0}")]
    RecordKey(String),
    /// A collection with this name exists already.
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// No collection has this name.
    #[error("collection {0:?} does not exist")]
    CollectionNotFound(String),
    /// No document has this id in the collection.
    #[error("document {id:?} does not exist in collection {collection:?}")]
    DocumentNotFound {
        /// The collection searched.
        collection: String,
        /// The missing id.
        id: String,
    },
    /// No record has this id.
    #[error("record {0} does not exist")]
    RecordNotFound(String),
    /// The caller passed something the store cannot accept.
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    /// The data directory was written by a newer Quarry.
    #[error(
        "the store at {path} has format version {found}, but this build of quarry supports only \
         up to {supported}; run a newer quarry, or point --data-dir at another directory"
    )]
    FormatTooNew {
        /// The store's directory.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// The data directory was written by an older format that this build
    /// cannot migrate.
    #[error(
        "the store at {path} has format version {found}, older than {supported}, and cannot be \
         migrated by this build; export it with the quarry that wrote it"
    )]
    FormatTooOld {
        /// The store's directory.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// sled could not open the directory (often: another process holds it).
    #[error(
        "cannot open the store at {path}: {source} (only one quarry process may use a data \
         directory at a time)"
    )]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A stored value could not be read back.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// sled failed (I/O, disk full, ...).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
}

impl StoreError {
    /// True when the disk refused an operation (full, read-only, gone): the
    /// server's state, not a bug.
    pub fn is_io(&self) -> bool {
        self.io_kind().is_some()
    }

    /// The kind of the disk's refusal, for an I/O failure.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Self::Sled(sled::Error::Io(e)) => Some(e.kind()),
            _ => None,
        }
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => Self::Sled(e),
        }
    }
}
