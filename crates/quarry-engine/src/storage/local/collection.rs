//! One collection of the local backend, and its one commit step: under the
//! collection's index write lock, write to sled (flushed; failures watched
//! by the disk guard), apply what was written to the indexes, then check
//! whether the dense graph needs a rebuild.
//!
//! The lock is held across the write and the apply so that the indexes
//! see this collection's writes in the store's order (and so that the
//! counts read under it agree); the store is flushed inside the write, so
//! a write is durable before it is applied and before the caller hears of
//! it.

use std::collections::HashMap;
use std::sync::Arc;

use quarry_core::{
    CollectionInfo, CollectionName, CollectionSettings, IndexedCounts, NewDocument, StoredDocument,
    UpsertStatus,
};
use quarry_index::{CollectionIndex, IndexedChunk, IndexedDocument, SearchQuery};
use quarry_store::{StoreError, StoredCollection};

use super::{collection_gone, indexes, Local};
use crate::storage::{CollectionStorage, Doomed, Removed, Written};
use crate::{EngineError, Result, SearchHit};

/// A handle on one collection: its stored description and its indexes,
/// looked up once.
pub(super) struct LocalCollection {
    local: Arc<Local>,
    stored: StoredCollection,
    index: indexes::Shared,
}

impl LocalCollection {
    pub(super) fn open(local: &Arc<Local>, name: &CollectionName) -> Result<Self> {
        let stored = local.store.collection(name)?;
        let index = local.indexes.get(stored.id)?;
        Ok(Self {
            local: Arc::clone(local),
            stored,
            index,
        })
    }

    /// Takes the write lock and checks that the collection still exists
    /// (it may have been dropped, and even re-created under the same name,
    /// since this handle was opened).
    fn lock(&self) -> Result<std::sync::RwLockWriteGuard<'_, CollectionIndex>> {
        let index = indexes::write(&self.index)?;
        self.check_current()?;
        Ok(index)
    }

    fn check_current(&self) -> Result<StoredCollection> {
        match self.local.store.collection(&self.stored.name) {
            Ok(now) if now.id == self.stored.id => Ok(now),
            Ok(_) | Err(StoreError::CollectionNotFound(_)) => {
                Err(collection_gone(&self.stored.name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After a write: replaced and deleted documents leave tombstones.
    fn after_write(&self) {
        indexes::maybe_rebuild(&self.index);
    }
}

impl CollectionStorage for LocalCollection {
    fn name(&self) -> &CollectionName {
        &self.stored.name
    }

    fn settings(&self) -> &CollectionSettings {
        &self.stored.settings
    }

    /// The stored counts beside the indexes' counts, read under the
    /// index's lock: writers hold it from their store write to their index
    /// update, so the two agree unless recovery went wrong.
    fn info(&self) -> Result<CollectionInfo> {
        let index = indexes::read(&self.index)?;
        let stored = self.check_current()?;
        Ok(stored.info(IndexedCounts {
            dense: index.len() as u64,
            keyword: index.keyword().len(),
        }))
    }

    fn document(&self, id: &str) -> Result<StoredDocument> {
        self.local
            .store
            .document_in(self.stored.id, id)?
            .ok_or_else(|| {
                EngineError::from(StoreError::DocumentNotFound {
                    collection: self.stored.name.to_string(),
                    id: id.to_owned(),
                })
            })
    }

    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .local
            .store
            .document_in(self.stored.id, id)?
            .map(|d| d.content_hash))
    }

    fn write(&self, docs: Vec<NewDocument>) -> Result<Written> {
        let local = &self.local;
        let mut index = self.lock()?;
        tracing::debug!(documents = docs.len(), "writing documents to the store");
        let outcome = local
            .disk
            .watch(local.store.upsert_documents(&self.stored.name, &docs))?;
        tracing::debug!(seq = outcome.last_seq, "documents stored");
        // The index gets what was just written, from memory: the store
        // hands out chunk ids in input order, document by document, for
        // every document it did not skip.
        let mut ids = outcome.added_chunks.iter().copied();
        let mut changed = Vec::new();
        for (doc, status) in docs.into_iter().zip(&outcome.statuses) {
            if *status == UpsertStatus::Unchanged {
                continue;
            }
            let mut chunks = Vec::with_capacity(doc.chunks.len());
            for c in doc.chunks {
                let id = ids.next().ok_or_else(|| {
                    EngineError::Internal("the store returned fewer chunk ids than chunks".into())
                })?;
                chunks.push(IndexedChunk {
                    id,
                    text: c.text,
                    vector: c.vector,
                });
            }
            changed.push(IndexedDocument {
                id: doc.document.id,
                title: doc.document.title,
                metadata: doc.document.metadata,
                chunks,
            });
        }
        if outcome.last_seq > 0 {
            tracing::debug!(
                documents = changed.len(),
                "applying documents to the indexes"
            );
            index
                .upsert(changed, outcome.last_seq)
                .map_err(|e| local.disk.index_write_failed(e))?;
            tracing::debug!(seq = outcome.last_seq, "indexes updated");
        }
        drop(index);
        self.after_write();
        Ok(Written {
            chunks: outcome.added_chunks.len() as u64,
            statuses: outcome.statuses,
        })
    }

    fn delete(&self, which: Doomed<'_>) -> Result<Removed> {
        let local = &self.local;
        let mut index = self.lock()?;
        let matching;
        let ids = match which {
            Doomed::Ids(ids) => ids,
            Doomed::Matching(filter) => {
                let mut ids = Vec::new();
                for doc in local.store.documents(self.stored.id) {
                    let doc = doc?;
                    if filter.matches(&doc.document.metadata) {
                        ids.push(doc.document.id);
                    }
                }
                matching = ids;
                &matching
            }
        };
        // Deletes stay allowed under the free-space reserve: they are how
        // an operator makes room.
        local.disk.check_not_failed()?;
        let outcome = local
            .disk
            .watch(local.store.delete_documents(&self.stored.name, ids))?;
        if outcome.last_seq > 0 {
            index
                .remove(&outcome.deleted, outcome.last_seq)
                .map_err(|e| local.disk.index_write_failed(e))?;
        }
        drop(index);
        self.after_write();
        Ok(Removed {
            documents: outcome.deleted.len() as u64,
            chunks: outcome.removed_chunks.len() as u64,
        })
    }

    fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<SearchHit>> {
        let store = &self.local.store;
        let id = self.stored.id;
        let fused = indexes::read(&self.index)?.search(query)?;
        let mut docs = HashMap::new();
        let mut hits = Vec::with_capacity(fused.len());
        for f in fused {
            // A hit deleted since the search started is skipped.
            let Some(chunk) = store.chunk(id, f.id)? else {
                continue;
            };
            if !docs.contains_key(&chunk.document_id) {
                let Some(d) = store.document_in(id, &chunk.document_id)? else {
                    continue;
                };
                docs.insert(chunk.document_id.clone(), d.document);
            }
            let doc = &docs[&chunk.document_id];
            hits.push(SearchHit {
                chunk_id: f.id,
                title: doc.title.clone(),
                metadata: doc.metadata.clone(),
                document_id: chunk.document_id,
                text: chunk.text,
                score: f.score,
                dense: f.dense,
                keyword: f.keyword,
                chunk_index: chunk.index,
            });
        }
        Ok(hits)
    }

    fn vector(&self, chunk_id: u64) -> Result<Option<Vec<f32>>> {
        Ok(self.local.store.vector(self.stored.id, chunk_id)?)
    }

    fn word_weights(&self, words: &[&str]) -> Result<Vec<Option<f32>>> {
        Ok(indexes::read(&self.index)?.keyword().idf(words))
    }
}
