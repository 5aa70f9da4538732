//! The engine's search indexes, one [`CollectionIndex`] per collection,
//! derived from the store. In this build they live in memory and are built
//! from the store when the server starts (vectors come from the store:
//! nothing is re-embedded); checkpoints on disk come next.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use quarry_index::{CollectionIndex, IndexedChunk, IndexedDocument};
use quarry_store::{Store, StoredCollection, StoredDocument};

use crate::{EngineError, Result};

/// Rebuild a collection's HNSW graph when deleted chunks pass this share.
pub const REBUILD_SHARE: f64 = 0.2;
/// Documents per index batch while building.
const BUILD_BATCH: usize = 1000;

pub(crate) type Shared = Arc<RwLock<CollectionIndex>>;

/// Index errors are the server's own failures.
pub(crate) fn index_error(e: quarry_index::IndexError) -> EngineError {
    EngineError::Internal(format!("index: {e}"))
}

/// Every collection's index.
#[derive(Default)]
pub(crate) struct Indexes {
    map: RwLock<HashMap<u64, Shared>>,
}

/// Reads a stored document with its chunks and vectors, as the index takes it.
pub(crate) fn load_document(
    store: &Store,
    collection_id: u64,
    doc: StoredDocument,
) -> Result<IndexedDocument> {
    let mut chunks = Vec::with_capacity(doc.chunk_ids.len());
    for id in &doc.chunk_ids {
        let chunk = store.chunk(collection_id, *id)?.ok_or_else(|| {
            EngineError::Internal(format!("chunk {id} of {} is missing", doc.document.id))
        })?;
        let vector = store
            .vector(collection_id, *id)?
            .ok_or_else(|| EngineError::Internal(format!("vector of chunk {id} is missing")))?;
        chunks.push(IndexedChunk {
            id: *id,
            text: chunk.text,
            vector,
        });
    }
    Ok(IndexedDocument {
        id: doc.document.id,
        title: doc.document.title,
        metadata: doc.document.metadata,
        chunks,
    })
}

fn lock_poisoned() -> EngineError {
    EngineError::Internal("an index lock was poisoned by a panic".into())
}

impl Indexes {
    /// Builds every collection's index from the store.
    pub(crate) fn build(store: &Store) -> Result<Self> {
        let indexes = Self::default();
        for coll in store.list_collections()? {
            let started = std::time::Instant::now();
            let index = build_one(store, &coll)?;
            tracing::info!(
                collection = %coll.name,
                chunks = coll.chunk_count,
                ms = started.elapsed().as_millis() as u64,
                "built the collection's indexes from the store"
            );
            indexes.insert(coll.id, index)?;
        }
        Ok(indexes)
    }

    pub(crate) fn insert(&self, collection_id: u64, index: CollectionIndex) -> Result<()> {
        self.map
            .write()
            .map_err(|_| lock_poisoned())?
            .insert(collection_id, Arc::new(RwLock::new(index)));
        Ok(())
    }

    pub(crate) fn remove(&self, collection_id: u64) -> Result<()> {
        self.map
            .write()
            .map_err(|_| lock_poisoned())?
            .remove(&collection_id);
        Ok(())
    }

    pub(crate) fn get(&self, collection_id: u64) -> Result<Shared> {
        self.map
            .read()
            .map_err(|_| lock_poisoned())?
            .get(&collection_id)
            .cloned()
            .ok_or_else(|| {
                EngineError::Internal(format!("collection {collection_id} has no index"))
            })
    }
}

/// Builds one collection's index from the store.
pub(crate) fn build_one(store: &Store, coll: &StoredCollection) -> Result<CollectionIndex> {
    let mut index = CollectionIndex::new(coll.settings, coll.chunk_count as usize, REBUILD_SHARE)
        .map_err(index_error)?;
    let mut batch = Vec::with_capacity(BUILD_BATCH);
    for doc in store.documents(coll.id) {
        batch.push(load_document(store, coll.id, doc?)?);
        if batch.len() == BUILD_BATCH {
            index
                .upsert(std::mem::take(&mut batch))
                .map_err(index_error)?;
        }
    }
    if !batch.is_empty() {
        index.upsert(batch).map_err(index_error)?;
    }
    Ok(index)
}

/// Write access to an index, mapping a poisoned lock.
pub(crate) fn write(index: &Shared) -> Result<std::sync::RwLockWriteGuard<'_, CollectionIndex>> {
    index.write().map_err(|_| lock_poisoned())
}

/// Read access to an index, mapping a poisoned lock.
pub(crate) fn read(index: &Shared) -> Result<std::sync::RwLockReadGuard<'_, CollectionIndex>> {
    index.read().map_err(|_| lock_poisoned())
}
