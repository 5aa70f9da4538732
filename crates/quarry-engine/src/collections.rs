//! Collection management: create, get, list, delete.

use quarry_core::{CollectionInfo, CollectionName, CollectionSettings};

use crate::{Engine, Result};

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
            let stored = inner.store.create_collection(&req.name, req.settings)?;
            // No op of the new collection can follow before its index
            // exists, so the store's last sequence number covers it.
            let seq = inner.store.last_seq()?;
            if let Err(e) = inner.indexes.create(&stored, seq) {
                // Without indexes the collection is unusable: undo it.
                let _ = inner.store.drop_collection(&req.name);
                return Err(e);
            }
            tracing::info!(collection = %req.name, "collection created");
            Ok(stored.info())
        })
        .await
    }

    /// Returns one collection with its counts.
    pub async fn get_collection(&self, name: CollectionName) -> Result<CollectionInfo> {
        self.blocking(move |inner| Ok(inner.store.collection(&name)?.info()))
            .await
    }

    /// Lists every collection, ordered by name.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        self.blocking(|inner| {
            Ok(inner
                .store
                .list_collections()?
                .iter()
                .map(|c| c.info())
                .collect())
        })
        .await
    }

    /// Deletes a collection with all its data.
    pub async fn delete_collection(&self, name: CollectionName) -> Result<DeletedCollection> {
        self.blocking(move |inner| {
            let id = inner.store.collection(&name)?.id;
            let dropped = inner.store.drop_collection(&name)?;
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
