//! The one commit step of every document write (upsert, bulk, delete):
//! under the collection's index write lock, write to the store (its
//! failures watched by the disk guard), apply what was written to the
//! indexes, then check whether the dense graph needs a rebuild.
//!
//! The lock is held across the write and the apply so that the indexes
//! see this collection's writes in the store's order; the store is
//! flushed inside the write, so a write is durable before it is applied
//! and before the caller hears of it.

use quarry_core::CollectionName;
use quarry_index::IndexedDocument;
use quarry_store::{Store, StoredCollection};

use crate::{indexes, Inner, Result};

/// What a write changed, for the indexes.
pub(crate) enum IndexChange {
    /// These documents were written (their old chunks, if any, replaced).
    Upsert(Vec<IndexedDocument>),
    /// These document ids were deleted.
    Remove(Vec<String>),
}

/// Runs `write` against the store for `collection` and applies the
/// change it returns, with the op-log sequence number of its last entry
/// (0: nothing was written, nothing to apply).
pub(crate) fn commit<T>(
    inner: &Inner,
    collection: &CollectionName,
    write: impl FnOnce(&Store, &StoredCollection) -> Result<(T, u64, IndexChange)>,
) -> Result<T> {
    let store = &inner.store;
    let coll = store.collection(collection)?;
    let shared = inner.indexes.get(coll.id)?;
    let mut index = indexes::write(&shared)?;
    let (out, seq, change) = write(store, &coll)?;
    if seq > 0 {
        match change {
            IndexChange::Upsert(docs) => {
                tracing::debug!(documents = docs.len(), "applying documents to the indexes");
                index
                    .upsert(docs, seq)
                    .map_err(|e| inner.disk.index_write_failed(e))?;
                tracing::debug!(seq, "indexes updated");
            }
            IndexChange::Remove(ids) => index
                .remove(&ids, seq)
                .map_err(|e| inner.disk.index_write_failed(e))?,
        }
    }
    drop(index);
    // Replaced and deleted documents leave tombstones.
    indexes::maybe_rebuild(&shared);
    Ok(out)
}
