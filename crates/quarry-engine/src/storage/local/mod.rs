//! The single-node backend: sled is the truth (documents, chunks, vectors,
//! the op log, records), and each collection's HNSW graph and tantivy
//! index are derived from it ([`indexes`]), checkpointed on a timer and
//! recovered at start. [`disk`] guards the data directory's free space and
//! latches writes off after a disk failure.
//!
//! Durability is the store's: a write is flushed to sled before it is
//! applied to the indexes and before the call returns; an index that
//! misses it catches up from the op log on the next start.

mod collection;
pub(crate) mod disk;
pub(crate) mod indexes;

use std::path::Path;
use std::sync::Arc;

use quarry_core::{CollectionInfo, CollectionName, CollectionSettings, IndexedCounts, Placement};
use quarry_core::{Record, RecordId};
use quarry_store::{RecordKey, Store, StoreError};

use super::{CollectionStorage, RecordIter, RecordStorage, Storage};
use crate::{DeletedCollection, EngineError, Result};
use collection::LocalCollection;
pub use indexes::IndexConfig;

/// sled + Quarry's HNSW graph + tantivy in one data directory.
pub struct LocalStorage {
    local: Arc<Local>,
}

/// What the storage and its collection handles share.
pub(crate) struct Local {
    pub(crate) store: Store,
    pub(crate) indexes: indexes::Indexes,
    pub(crate) disk: disk::DiskGuard,
}

impl LocalStorage {
    /// Opens (creating when missing) the store in `DIR/store` and the
    /// indexes in `DIR/indexes`, recovering every collection's indexes,
    /// and starts the checkpointer. Blocking: index recovery may rebuild.
    pub fn open(
        data_dir: &Path,
        record_key: Option<RecordKey>,
        store_cache_bytes: u64,
        index: IndexConfig,
        min_free_disk_bytes: u64,
    ) -> Result<Self> {
        let store = Self::open_store(data_dir, record_key, store_cache_bytes)?;
        Self::with_store(store, data_dir, index, min_free_disk_bytes)
    }

    /// The first half of [`LocalStorage::open`]: creates the data
    /// directory when missing and opens its store (sled reading its files:
    /// most of a second at a million chunks, which a caller can spend
    /// loading models at the same time).
    pub(crate) fn open_store(
        data_dir: &Path,
        record_key: Option<RecordKey>,
        cache_bytes: u64,
    ) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            EngineError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        Ok(Store::open_options(
            data_dir.join("store"),
            record_key,
            cache_bytes,
        )?)
    }

    /// The second half: recovers every collection's indexes over `store`
    /// (the store of `data_dir`) and starts the checkpointer.
    pub(crate) fn with_store(
        store: Store,
        data_dir: &Path,
        index: IndexConfig,
        min_free_disk_bytes: u64,
    ) -> Result<Self> {
        let indexes = indexes::Indexes::open(&store, data_dir.join("indexes"), index)?;
        let local = Arc::new(Local {
            store,
            indexes,
            disk: disk::DiskGuard::new(data_dir.to_path_buf(), min_free_disk_bytes),
        });
        indexes::spawn_checkpointer(Arc::downgrade(&local), index.checkpoint_interval)
            .map_err(|e| EngineError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self { local })
    }
}

impl Storage for LocalStorage {
    fn create_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        placement: Placement,
    ) -> Result<CollectionInfo> {
        let local = &self.local;
        local.disk.check_room()?;
        let stored = local
            .disk
            .watch(local.store.create_collection(name, settings))?;
        // No op of the new collection can follow before its index exists,
        // so the store's last sequence number covers it.
        let seq = local.store.last_seq()?;
        if let Err(e) = local.indexes.create(&stored, seq) {
            // Without indexes the collection is unusable: undo it.
            let _ = local.store.drop_collection(name);
            return Err(e);
        }
        let mut info = stored.info(IndexedCounts::default());
        if placement.is_set() {
            info.note = "placement (shard_number, replication_factor, write_consistency_factor) is ignored by the embedded backend: one data directory holds the whole collection; use --backend qdrant to shard and replicate".into();
            tracing::info!(collection = %name, "{}", info.note);
        }
        Ok(info)
    }

    fn collection(&self, name: &CollectionName) -> Result<Arc<dyn CollectionStorage>> {
        Ok(Arc::new(LocalCollection::open(&self.local, name)?))
    }

    fn collection_names(&self) -> Result<Vec<CollectionName>> {
        Ok(self
            .local
            .store
            .list_collections()?
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    fn drop_collection(&self, name: &CollectionName) -> Result<DeletedCollection> {
        let local = &self.local;
        let id = local.store.collection(name)?.id;
        local.disk.check_not_failed()?;
        let dropped = local.disk.watch(local.store.drop_collection(name))?;
        local.indexes.remove(id)?;
        Ok(DeletedCollection {
            name: name.clone(),
            documents: dropped.documents,
            chunks: dropped.chunks,
        })
    }

    fn records(&self) -> &dyn RecordStorage {
        self
    }

    fn check_room(&self) -> Result<()> {
        self.local.disk.check_room()
    }

    fn check_writable(&self) -> Result<()> {
        self.local.disk.check_not_failed()
    }

    fn writes_failed(&self) -> bool {
        self.local.disk.has_failed()
    }

    fn flush(&self) -> Result<()> {
        self.local.store.flush()?;
        self.local.indexes.checkpoint_all(&self.local.store)
    }
}

/// Records live in the same sled database; their writes pass the same
/// disk guard.
impl RecordStorage for LocalStorage {
    fn insert(&self, record: Record) -> Result<Record> {
        Ok(self
            .local
            .disk
            .watch(self.local.store.insert_record(record))?)
    }

    fn get(&self, id: RecordId) -> Result<Record> {
        Ok(self.local.store.record(id)?)
    }

    fn update(&self, id: RecordId, change: &dyn Fn(&mut Record)) -> Result<Record> {
        Ok(self
            .local
            .disk
            .watch(self.local.store.update_record(id, change))?)
    }

    fn newest_first(&self, before: Option<RecordId>) -> RecordIter<'_> {
        Box::new(
            self.local
                .store
                .records_newest_first(before)
                .map(|r| r.map_err(EngineError::from)),
        )
    }

    fn oldest_first(&self) -> RecordIter<'_> {
        Box::new(
            self.local
                .store
                .records_oldest_first()
                .map(|r| r.map_err(EngineError::from)),
        )
    }

    fn session_ids(&self, session_id: &str) -> Box<dyn Iterator<Item = Result<RecordId>> + '_> {
        Box::new(
            self.local
                .store
                .session_record_ids(session_id)
                .map(|r| r.map_err(EngineError::from)),
        )
    }

    fn delete(&self, ids: &[RecordId]) -> Result<u64> {
        Ok(self
            .local
            .disk
            .watch(self.local.store.delete_records(ids))?)
    }

    fn delete_session(&self, session_id: &str) -> Result<u64> {
        Ok(self
            .local
            .disk
            .watch(self.local.store.delete_session_records(session_id))?)
    }

    fn page_token_secret(&self) -> Result<Vec<u8>> {
        Ok(self.local.store.page_token_secret()?)
    }
}

/// The error of a handle whose collection was dropped.
fn collection_gone(name: &CollectionName) -> EngineError {
    EngineError::from(StoreError::CollectionNotFound(name.to_string()))
}
