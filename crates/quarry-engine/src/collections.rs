//! Collection management: create, get, list, delete.

use quarry_core::{CollectionInfo, CollectionName, CollectionSettings, Placement};

use crate::{Engine, ErrorKind, Result};

/// A validated request to create a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCollection {
    /// The new collection's name.
    pub name: CollectionName,
    /// Its settings, defaults filled in.
    pub settings: CollectionSettings,
    /// Its shards and replicas on a clustered backend (validated).
    pub placement: Placement,
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
            let info = inner
                .storage
                .create_collection(&req.name, req.settings, req.placement)?;
            tracing::info!(collection = %req.name, "collection created");
            Ok(info)
        })
        .await
    }

    /// Returns one collection with its counts.
    pub async fn get_collection(&self, name: CollectionName) -> Result<CollectionInfo> {
        self.blocking(move |inner| inner.storage.collection(&name)?.info())
            .await
    }

    /// Lists every collection, ordered by name.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        self.blocking(|inner| {
            let mut infos = Vec::new();
            for name in inner.storage.collection_names()? {
                match inner.storage.collection(&name).and_then(|c| c.info()) {
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
            let dropped = inner.storage.drop_collection(&name)?;
            tracing::info!(
                collection = %name,
                documents = dropped.documents,
                chunks = dropped.chunks,
                "collection deleted"
            );
            Ok(dropped)
        })
        .await
    }
}
