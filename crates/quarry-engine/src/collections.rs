//! Collection management: create, get, list, delete.

use quarry_core::{CollectionInfo, CollectionName, CollectionSettings, IndexedCounts};

use crate::{Engine, ErrorKind, Result};

/// A validated request to create a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCollection {
    /// The new collection's name.
    pub name: CollectionName,
    /// Its settings, defaults filled in.
    pub settings: CollectionSettings,
}

/// What deleting a collection removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedCollection {
    /// The collection's name.
    pub name: CollectionName,
    /// Documents removed.
    pub documents: u64,
    /// Chunks removed.
    pub chunks: u64,
}

impl Engine {
    /// Creates a collection.
    pub async fn create_collection(&self, req: CreateCollection) -> Result<CollectionInfo> {
        self.blocking(move |inner| {
            inner.disk.check_room()?;
            let stored = inner
                .disk
                .watch(inner.store.create_collection(&req.name, req.settings))?;
            // No op of the new collection can follow before its index
            // exists, so the store's last sequence number covers it.
            let seq = inner.store.last_seq()?;
            if let Err(e) = inner.indexes.create(&stored, seq) {
                // Without indexes the collection is unusable: undo it.
                let _ = inner.store.drop_collection(&req.name);
                return Err(e);
            }
            tracing::info!(collection = %req.name, "collection created");
            Ok(stored.info(IndexedCounts::default()))
        })
        .await
    }

    /// Returns one collection with its counts.
    pub async fn get_collection(&self, name: CollectionName) -> Result<CollectionInfo> {
        self.blocking(move |inner| inner.indexes.info(&inner.store, &name))
            .await
    }

    /// Lists every collection, ordered by name.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        self.blocking(|inner| {
            let mut infos = Vec::new();
            for c in inner.store.list_collections()? {
                match inner.indexes.info(&inner.store, &c.name) {
                    Ok(info) => infos.push(info),
                    // Deleted since the list was read.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(infos)
        })
        .await
    }

    /// Deletes a collection with all its data.
    pub async fn delete_collection(&self, name: CollectionName) -> Result<DeletedCollection> {
        self.blocking(move |inner| {
            let id = inner.store.collection(&name)?.id;
            inner.disk.check_not_failed()?;
            let dropped = inner.disk.watch(inner.store.drop_collection(&name))?;
            inner.indexes.remove(id)?;
            tracing::info!(
                collection = %name,
                documents = dropped.documents,
                chunks = dropped.chunks,
                "collection deleted"
            );
            Ok(DeletedCollection {
                name,
                documents: dropped.documents,
                chunks: dropped.chunks,
            })
        })
        .await
    }
}
