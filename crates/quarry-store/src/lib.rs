//! The source of truth: every collection, document, chunk, vector, operation
//! and prompt/response record lives here, in sled.
//!
//! The HNSW and tantivy indexes are derived from this store and can always be
//! rebuilt from it; the operation log (a monotonically increasing sequence
//! number per write) lets them catch up from a checkpoint instead.
//!
//! Every write method flushes sled before it returns, so a caller that
//! acknowledges a client after a successful call never acknowledges
//! something a crash could lose.
//!
//! Layout (one sled tree each):
//! - `meta`: format version and counters;
//! - `collections`: name -> [`StoredCollection`] (JSON);
//! - `documents`: collection id + document id -> [`StoredDocument`] (JSON);
//! - `chunks`: collection id + chunk id -> [`quarry_core::Chunk`] (JSON);
//! - `vectors`: collection id + chunk id -> little-endian f32s;
//! - `oplog`: sequence number -> [`Op`] (JSON);
//! - `records`: record id -> [`quarry_core::Record`] (JSON);
//! - `sessions`: session id ++ 0 ++ record id -> nothing, the records of
//!   each conversation (rebuilt from `records` on open when missing);
//! - `purges`: collection id -> name, for dropped collections whose data is
//!   still being removed (resumed on open).
//!
//! Values are JSON (serde with defaults) so that adding a field needs no
//! migration; vectors are raw floats because they are large and hot.

mod collections;
mod documents;
mod error;
mod footprint;
mod keys;
mod oplog;
mod records;
mod seal;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use collections::StoredCollection;
pub use documents::{DeleteOutcome, DocumentHead, UpsertOutcome};
pub use footprint::{Footprint, TreeFootprint};
// The document shapes live in quarry-core (every storage backend shares
// them); re-exported for the store's callers.
pub use error::StoreError;
pub use oplog::{Op, OpKind};
pub use quarry_core::{NewChunk, NewDocument, StoredDocument, UpsertStatus};
pub use seal::RecordKey;

/// The on-disk format this build writes. A data directory stamped with a
/// larger number was written by a newer Quarry and is refused.
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &[u8] = b"format_version";

/// Result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long [`Store::open`] waits for a lock held by a store this process
/// just dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled's page cache unless [`Store::open_options`] is given another size.
/// sled's own default is 1 GiB, which a rebuild's scan of every vector
/// fills and keeps: at a million chunks that was a third of the server's
/// memory. The hot reads after a start (the chunks of search hits,
/// documents being replaced) fit in far less.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// The sled-backed store. Cheap to share behind an `Arc`; all methods take
/// `&self`.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    collections: sled::Tree,
    documents: sled::Tree,
    chunks: sled::Tree,
    vectors: sled::Tree,
    oplog: sled::Tree,
    records: sled::Tree,
    sessions: sled::Tree,
    purges: sled::Tree,
    /// Serialises multi-tree writes so that transactions do not conflict and
    /// retry under load; reads never take it.
    write_lock: Mutex<()>,
    /// Seals records at rest, when set.
    record_key: Option<RecordKey>,
}

impl Store {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// Fails when another process has it open, when it was written by a newer
    /// format, or when it cannot be read. Resumes any interrupted collection
    /// deletion before returning.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// Opens the store with records sealed by `record_key` (see
    /// [`RecordKey`]). A data directory whose records are sealed must be
    /// opened with the same key, and one with plaintext records cannot be
    /// opened with a key: both fail here with a message.
    pub fn open_with(path: impl AsRef<Path>, record_key: Option<RecordKey>) -> Result<Self> {
        Self::open_options(path, record_key, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open_with`] with sled's page cache capped at `cache_bytes`
    /// (what sled counts: the serialized size of the pages it keeps).
    pub fn open_options(
        path: impl AsRef<Path>,
        record_key: Option<RecordKey>,
        cache_bytes: u64,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // A store dropped a moment ago in this process can still hold the
        // directory's lock: sled's flusher thread releases it when it
        // exits. Such a lock clears within milliseconds, so a lock error
        // is retried for a bounded time; a lock held by another process
        // outlasts it and is reported.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new()
                .path(&path)
                .cache_capacity(cache_bytes)
                .open()
            {
                Ok(db) => break db,
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.clone(),
                        source,
                    })
                }
            }
        };
        let store = Self {
            meta: db.open_tree("meta")?,
            collections: db.open_tree("collections")?,
            documents: db.open_tree("documents")?,
            chunks: db.open_tree("chunks")?,
            vectors: db.open_tree("vectors")?,
            oplog: db.open_tree("oplog")?,
            records: db.open_tree("records")?,
            sessions: db.open_tree("sessions")?,
            purges: db.open_tree("purges")?,
            db,
            path,
            write_lock: Mutex::new(()),
            record_key,
        };
        store.check_format()?;
        store.check_record_key()?;
        store.resume_purges()?;
        store.index_sessions()?;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes everything buffered to disk. Write methods already do this;
    /// shutdown calls it once more.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn check_format(&self) -> Result<()> {
        match self.meta.get(FORMAT_KEY)? {
            Some(raw) => {
                let found = keys::decode_u32(&raw)
                    .ok_or_else(|| StoreError::Corrupt("format_version is not a u32".into()))?;
                if found > FORMAT_VERSION {
                    return Err(StoreError::FormatTooNew {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                if found < FORMAT_VERSION {
                    return Err(StoreError::FormatTooOld {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                Ok(())
            }
            None => {
                // A store with data but no stamp was not written by Quarry:
                // refuse it rather than guess.
                if !self.collections.is_empty() || !self.records.is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "{} has data but no format_version key",
                        self.path.display()
                    )));
                }
                self.meta
                    .insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                self.flush()
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock leaves sled consistent (each write is
        // one transaction), so a poisoned lock is safe to reuse.
        self.write_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Reads a JSON value stored by this crate.
fn decode<T: serde::de::DeserializeOwned>(what: &str, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Encodes a value as JSON for storage.
fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("stored types always serialise")
}

#[cfg(test)]
mod tests;
