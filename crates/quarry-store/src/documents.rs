//! Documents, their chunks and the chunks' vectors. A document and all its
//! chunks are written, replaced or removed in one transaction together with
//! the collection's counts and an op-log entry, so no reader and no crash
//! ever sees half a document.

use std::collections::HashSet;

use quarry_core::{
    Chunk, CollectionName, InvalidArgument, NewDocument, StoredDocument, UpsertStatus,
};
use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};

use crate::collections::StoredCollection;
use crate::oplog::{self, OpKind};
use crate::{decode, encode, keys, Result, Store, StoreError};

/// The result of an upsert.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpsertOutcome {
    /// One status per input document, in input order.
    pub statuses: Vec<UpsertStatus>,
    /// Chunk ids written, in input order, document by document (skipped
    /// documents contribute none).
    pub added_chunks: Vec<u64>,
    /// Chunk ids removed (old versions).
    pub removed_chunks: Vec<u64>,
    /// The sequence number of the last op written (0 if nothing changed).
    pub last_seq: u64,
}

/// The result of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteOutcome {
    /// Ids of the documents deleted (ids that did not exist are left out).
    pub deleted: Vec<String>,
    /// Their chunks, now removed.
    pub removed_chunks: Vec<u64>,
    /// The sequence number of the last op written (0 if nothing changed).
    pub last_seq: u64,
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn load_collection(
    collections: &TransactionalTree,
    name: &CollectionName,
) -> std::result::Result<StoredCollection, ConflictableTransactionError<StoreError>> {
    match collections.get(name.as_str())? {
        Some(raw) => decode("collection", &raw).map_err(abort),
        None => Err(abort(StoreError::CollectionNotFound(name.to_string()))),
    }
}

/// Removes a document's chunks and vectors inside a transaction.
fn remove_chunks(
    chunks: &TransactionalTree,
    vectors: &TransactionalTree,
    collection_id: u64,
    ids: &[u64],
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    for &id in ids {
        let key = keys::chunk(collection_id, id);
        chunks.remove(&key[..])?;
        vectors.remove(&key[..])?;
    }
    Ok(())
}

impl Store {
    /// Inserts or replaces documents in one atomic, flushed write.
    ///
    /// Ids must be unique within the batch. A document whose stored content
    /// hash equals the new one is left untouched.
    pub fn upsert_documents(
        &self,
        collection: &CollectionName,
        docs: &[NewDocument],
    ) -> Result<UpsertOutcome> {
        let mut seen = HashSet::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            if !seen.insert(d.document.id.as_str()) {
                return Err(InvalidArgument::new(
                    format!("documents[{i}].id"),
                    format!("{:?} appears more than once in the batch", d.document.id),
                )
                .into());
            }
        }
        let _guard = self.lock();
        let trees = (
            &self.meta,
            &self.collections,
            &self.documents,
            &self.chunks,
            &self.vectors,
            &self.oplog,
        );
        let outcome =
            trees.transaction(|(meta, collections, documents, chunks, vectors, log)| {
                let mut coll = load_collection(collections, collection)?;
                let mut out = UpsertOutcome::default();
                for d in docs {
                    let key = keys::scoped(coll.id, d.document.id.as_bytes());
                    let old: Option<StoredDocument> = match documents.get(&key)? {
                        Some(raw) => Some(decode("document", &raw).map_err(abort)?),
                        None => None,
                    };
                    let removed = match &old {
                        Some(old) if old.content_hash == d.content_hash => {
                            out.statuses.push(UpsertStatus::Unchanged);
                            continue;
                        }
                        Some(old) => {
                            remove_chunks(chunks, vectors, coll.id, &old.chunk_ids)?;
                            coll.chunk_count -= old.chunk_ids.len() as u64;
                            out.statuses.push(UpsertStatus::Updated);
                            old.chunk_ids.clone()
                        }
                        None => {
                            coll.document_count += 1;
                            out.statuses.push(UpsertStatus::Added);
                            Vec::new()
                        }
                    };
                    let mut added = Vec::with_capacity(d.chunks.len());
                    for (index, c) in d.chunks.iter().enumerate() {
                        let id = coll.next_chunk_id;
                        coll.next_chunk_id += 1;
                        let chunk = Chunk {
                            id,
                            document_id: d.document.id.clone(),
                            index: index as u32,
                            text: c.text.clone(),
                        };
                        let ckey = keys::chunk(coll.id, id);
                        chunks.insert(&ckey[..], encode(&chunk))?;
                        vectors.insert(&ckey[..], keys::encode_vector(&c.vector))?;
                        added.push(id);
                    }
                    coll.chunk_count += added.len() as u64;
                    let seq = oplog::append(
                        meta,
                        log,
                        coll.id,
                        OpKind::UpsertDocument {
                            document_id: d.document.id.clone(),
                            added: added.clone(),
                            removed: removed.clone(),
                        },
                    )?;
                    let stored = StoredDocument {
                        document: d.document.clone(),
                        content_hash: d.content_hash.clone(),
                        chunk_ids: added.clone(),
                        updated_seq: seq,
                    };
                    documents.insert(key, encode(&stored))?;
                    out.added_chunks.extend(added);
                    out.removed_chunks.extend(removed);
                    out.last_seq = seq;
                }
                collections.insert(collection.as_str(), encode(&coll))?;
                Ok(out)
            })?;
        self.flush()?;
        Ok(outcome)
    }

    /// Deletes documents by id; ids that do not exist are skipped.
    pub fn delete_documents(
        &self,
        collection: &CollectionName,
        ids: &[String],
    ) -> Result<DeleteOutcome> {
        let _guard = self.lock();
        let trees = (
            &self.meta,
            &self.collections,
            &self.documents,
            &self.chunks,
            &self.vectors,
            &self.oplog,
        );
        let result =
            trees.transaction(|(meta, collections, documents, chunks, vectors, log)| {
                let mut coll = load_collection(collections, collection)?;
                let mut outcome = DeleteOutcome::default();
                for id in ids {
                    let key = keys::scoped(coll.id, id.as_bytes());
                    let Some(raw) = documents.remove(key)? else {
                        continue;
                    };
                    let old: StoredDocument = decode("document", &raw).map_err(abort)?;
                    remove_chunks(chunks, vectors, coll.id, &old.chunk_ids)?;
                    coll.document_count -= 1;
                    coll.chunk_count -= old.chunk_ids.len() as u64;
                    outcome.last_seq = oplog::append(
                        meta,
                        log,
                        coll.id,
                        OpKind::DeleteDocument {
                            document_id: id.clone(),
                            removed: old.chunk_ids.clone(),
                        },
                    )?;
                    outcome.deleted.push(id.clone());
                    outcome.removed_chunks.extend(old.chunk_ids);
                }
                collections.insert(collection.as_str(), encode(&coll))?;
                Ok(outcome)
            })?;
        self.flush()?;
        Ok(result)
    }

    /// Reads one document.
    pub fn document(&self, collection: &CollectionName, id: &str) -> Result<StoredDocument> {
        let coll = self.collection(collection)?;
        match self.documents.get(keys::scoped(coll.id, id.as_bytes()))? {
            Some(raw) => decode("document", &raw),
            None => Err(StoreError::DocumentNotFound {
                collection: collection.to_string(),
                id: id.to_owned(),
            }),
        }
    }

    /// Reads one document by collection id (`None` when it does not exist).
    pub fn document_in(&self, collection_id: u64, id: &str) -> Result<Option<StoredDocument>> {
        self.documents
            .get(keys::scoped(collection_id, id.as_bytes()))?
            .map(|raw| decode("document", &raw))
            .transpose()
    }

    /// Every document of a collection, in id byte order.
    pub fn documents(
        &self,
        collection_id: u64,
    ) -> impl Iterator<Item = Result<StoredDocument>> + '_ {
        self.documents
            .scan_prefix(keys::collection_prefix(collection_id))
            .values()
            .map(|raw| decode("document", &raw?))
    }

    /// Every document of a collection without its text (nor its hash):
    /// what the indexes keep of each, read on every open. Skipping the
    /// text saves allocating and freeing it for every document (at a
    /// million documents, about a third of the collection's open time).
    pub fn document_heads(
        &self,
        collection_id: u64,
    ) -> impl Iterator<Item = Result<DocumentHead>> + '_ {
        self.documents
            .scan_prefix(keys::collection_prefix(collection_id))
            .values()
            .map(|raw| {
                let stored: StoredHead = decode("document", &raw?)?;
                Ok(DocumentHead {
                    id: stored.document.id,
                    title: stored.document.title,
                    metadata: stored.document.metadata,
                    chunk_ids: stored.chunk_ids,
                })
            })
    }

    /// Reads one chunk (`None` when it was removed).
    pub fn chunk(&self, collection_id: u64, chunk_id: u64) -> Result<Option<Chunk>> {
        self.chunks
            .get(keys::chunk(collection_id, chunk_id))?
            .map(|raw| decode("chunk", &raw))
            .transpose()
    }

    /// Reads one chunk's vector (`None` when it was removed).
    pub fn vector(&self, collection_id: u64, chunk_id: u64) -> Result<Option<Vec<f32>>> {
        self.vectors
            .get(keys::chunk(collection_id, chunk_id))?
            .map(|raw| {
                keys::decode_vector(&raw)
                    .ok_or_else(|| StoreError::Corrupt(format!("vector of chunk {chunk_id}")))
            })
            .transpose()
    }

    /// Every chunk of a collection, in id order (for index rebuilds).
    pub fn chunks(&self, collection_id: u64) -> impl Iterator<Item = Result<Chunk>> + '_ {
        self.chunks
            .scan_prefix(keys::collection_prefix(collection_id))
            .values()
            .map(|raw| decode("chunk", &raw?))
    }

    /// Every vector of a collection with its chunk id, in id order.
    pub fn vectors(
        &self,
        collection_id: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<f32>)>> + '_ {
        self.vectors
            .scan_prefix(keys::collection_prefix(collection_id))
            .map(|item| {
                let (key, raw) = item?;
                let id = keys::decode_u64(keys::suffix(&key))
                    .ok_or_else(|| StoreError::Corrupt("vector key".into()))?;
                let v = keys::decode_vector(&raw)
                    .ok_or_else(|| StoreError::Corrupt(format!("vector of chunk {id}")))?;
                Ok((id, v))
            })
    }
}

/// A stored document's id, title, metadata and chunk ids.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentHead {
    /// The document id.
    pub id: String,
    /// Its title ("" when it has none).
    pub title: String,
    /// Its metadata.
    pub metadata: quarry_core::Metadata,
    /// Its chunks' ids, in order.
    pub chunk_ids: Vec<u64>,
}

/// What [`DocumentHead`] reads of a stored document: serde skips the other
/// fields (the text among them) without allocating them.
#[derive(serde::Deserialize)]
struct StoredHead {
    document: HeadFields,
    chunk_ids: Vec<u64>,
}

#[derive(serde::Deserialize)]
struct HeadFields {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    metadata: quarry_core::Metadata,
}
