//! Collections: create, read, list and drop. A dropped collection is removed
//! from the name table atomically and its data is purged afterwards; a purge
//! that a crash interrupted is finished on the next open.

use quarry_core::{
    time::now_ms, CollectionInfo, CollectionName, CollectionSettings, IndexedCounts,
};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional};

use crate::oplog::{self, OpKind};
use crate::{decode, encode, keys, Result, Store, StoreError};

const NEXT_COLLECTION_ID_KEY: &[u8] = b"next_collection_id";
/// Keys removed per batch while purging a dropped collection.
const PURGE_BATCH: usize = 10_000;

/// A collection's row in the `collections` tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCollection {
    /// Numeric id: prefixes every key of the collection's data; never reused,
    /// so a re-created collection never sees a dropped one's leftovers.
    pub id: u64,
    /// The name.
    pub name: CollectionName,
    /// Effective settings.
    pub settings: CollectionSettings,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Number of documents.
    pub document_count: u64,
    /// Number of chunks.
    pub chunk_count: u64,
    /// The next chunk id to hand out.
    pub next_chunk_id: u64,
}

impl StoredCollection {
    /// The summary the API reports, with what the indexes (which the
    /// store does not see) hold.
    pub fn info(&self, indexed: IndexedCounts) -> CollectionInfo {
        CollectionInfo {
            name: self.name.clone(),
            settings: self.settings,
            created_at_ms: self.created_at_ms,
            document_count: self.document_count,
            chunk_count: self.chunk_count,
            indexed,
            placement: None,
            note: String::new(),
        }
    }
}

/// Counts removed by a drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Documents removed.
    pub documents: u64,
    /// Chunks removed.
    pub chunks: u64,
}

impl Store {
    /// Creates a collection. Fails with [`StoreError::CollectionExists`] when
    /// the name is taken.
    pub fn create_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
    ) -> Result<StoredCollection> {
        let _guard = self.lock();
        let created_at_ms = now_ms();
        let stored = (&self.meta, &self.collections, &self.oplog).transaction(
            |(meta, collections, log)| {
                if collections.get(name.as_str())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(
                        StoreError::CollectionExists(name.to_string()),
                    ));
                }
                let id = match meta.get(NEXT_COLLECTION_ID_KEY)? {
                    Some(raw) => keys::decode_u64(&raw).ok_or_else(|| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt(
                            "next_collection_id is not a u64".into(),
                        ))
                    })?,
                    None => 1,
                };
                meta.insert(NEXT_COLLECTION_ID_KEY, &(id + 1).to_be_bytes())?;
                let stored = StoredCollection {
                    id,
                    name: name.clone(),
                    settings,
                    created_at_ms,
                    document_count: 0,
                    chunk_count: 0,
                    next_chunk_id: 1,
                };
                collections.insert(name.as_str(), encode(&stored))?;
                oplog::append(
                    meta,
                    log,
                    id,
                    OpKind::CreateCollection {
                        name: name.to_string(),
                    },
                )?;
                Ok(stored)
            },
        )?;
        self.flush()?;
        Ok(stored)
    }

    /// Reads a collection's row. Fails with [`StoreError::CollectionNotFound`].
    pub fn collection(&self, name: &CollectionName) -> Result<StoredCollection> {
        match self.collections.get(name.as_str())? {
            Some(raw) => decode("collection", &raw),
            None => Err(StoreError::CollectionNotFound(name.to_string())),
        }
    }

    /// Every collection, ordered by name.
    pub fn list_collections(&self) -> Result<Vec<StoredCollection>> {
        self.collections
            .iter()
            .map(|item| {
                let (_, raw) = item?;
                decode("collection", &raw)
            })
            .collect()
    }

    /// Drops a collection and removes all its documents, chunks and vectors.
    /// Records that mention it are history and are kept.
    pub fn drop_collection(&self, name: &CollectionName) -> Result<Dropped> {
        let stored = {
            let _guard = self.lock();
            let stored = (&self.meta, &self.collections, &self.oplog, &self.purges).transaction(
                |(meta, collections, log, purges)| {
                    let stored: StoredCollection = match collections.get(name.as_str())? {
                        Some(raw) => decode("collection", &raw)
                            .map_err(ConflictableTransactionError::Abort)?,
                        None => {
                            return Err(ConflictableTransactionError::Abort(
                                StoreError::CollectionNotFound(name.to_string()),
                            ))
                        }
                    };
                    collections.remove(name.as_str())?;
                    purges.insert(&stored.id.to_be_bytes(), name.as_str())?;
                    oplog::append(
                        meta,
                        log,
                        stored.id,
                        OpKind::DropCollection {
                            name: name.to_string(),
                        },
                    )?;
                    Ok(stored)
                },
            )?;
            self.flush()?;
            stored
        };
        // The name is free and the data invisible from here on; removing the
        // data is idempotent and resumed on open if we crash now.
        self.purge(stored.id)?;
        Ok(Dropped {
            documents: stored.document_count,
            chunks: stored.chunk_count,
        })
    }

    /// Removes every key of collection `id` from the data trees, then its
    /// purge marker.
    fn purge(&self, id: u64) -> Result<()> {
        let prefix = keys::collection_prefix(id);
        for tree in [&self.documents, &self.chunks, &self.vectors] {
            loop {
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for item in tree.scan_prefix(prefix).keys().take(PURGE_BATCH) {
                    batch.remove(item?);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                tree.apply_batch(batch)?;
            }
        }
        self.purges.remove(prefix)?;
        self.flush()
    }

    /// Finishes drops that a crash interrupted.
    pub(crate) fn resume_purges(&self) -> Result<()> {
        let pending: Vec<u64> = self
            .purges
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                keys::decode_u64(&k)
                    .ok_or_else(|| StoreError::Corrupt("purge key is not a u64".into()))
            })
            .collect::<Result<_>>()?;
        for id in pending {
            tracing::info!(
                collection_id = id,
                "finishing an interrupted collection drop"
            );
            self.purge(id)?;
        }
        Ok(())
    }
}
