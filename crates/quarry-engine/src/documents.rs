//! Documents: chunk -> embed -> write through the collection's
//! [`crate::storage::CollectionStorage`] handle (looked up once per request; durable and
//! searchable when it returns), read, delete. Validation,
//! normalisation and content hashing are in [`crate::validate`]; unchanged
//! documents (same content hash) cost no chunking and no embedding.

use std::collections::HashSet;

use quarry_core::{
    CollectionName, Document, Filter, InvalidArgument, NewChunk, NewDocument, StoredDocument,
    UpsertStatus,
};

use crate::chunk::chunk_text;
use crate::storage::Doomed;
use crate::validate::normalise;
pub use crate::validate::{content_hash, validate_document, DocumentLimits};
use crate::{Engine, EngineError, Result};

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertSummary {
    /// Documents that did not exist.
    pub added: u64,
    /// Documents whose content changed.
    pub updated: u64,
    /// Documents with the same content hash as stored.
    pub unchanged: u64,
    /// Chunks written.
    pub chunks_written: u64,
    /// Chunk texts sent to the embedder (0 when every document was
    /// unchanged).
    pub chunks_embedded: u64,
}

/// Which documents to delete.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteSelector {
    /// These ids.
    Ids(Vec<String>),
    /// Every document whose metadata matches.
    Filter(Filter),
}

/// What a delete removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteSummary {
    /// Documents deleted.
    pub documents: u64,
    /// Chunks deleted.
    pub chunks: u64,
}

/// Texts per request sent to the embedding queue.
const EMBED_REQUEST_TEXTS: usize = 256;

/// The text embedded for a chunk: the title, when there is one, keeps the
/// chunk in context.
fn embedding_text(title: &str, chunk: &str) -> String {
    if title.trim().is_empty() {
        chunk.to_owned()
    } else {
        format!("{title}\n{chunk}")
    }
}

impl Engine {
    /// Inserts or replaces documents: validated, normalised and hashed;
    /// unchanged ones are skipped; changed ones are chunked, embedded and
    /// written in one flushed transaction.
    pub async fn upsert_documents(
        &self,
        collection: CollectionName,
        docs: Vec<Document>,
    ) -> Result<UpsertSummary> {
        let limits = self.inner.document_limits;
        if docs.is_empty() {
            return Err(
                InvalidArgument::new("documents", "at least one document is required").into(),
            );
        }
        if docs.len() > limits.max_documents {
            return Err(InvalidArgument::new(
                "documents",
                format!(
                    "has {} documents; the limit is {}",
                    docs.len(),
                    limits.max_documents
                ),
            )
            .into());
        }
        let mut seen = HashSet::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            validate_document(d, &format!("documents[{i}]"), &limits)?;
            if !seen.insert(d.id.as_str()) {
                return Err(InvalidArgument::new(
                    format!("documents[{i}].id"),
                    format!("{:?} appears more than once in the request", d.id),
                )
                .into());
            }
        }
        self.write_valid(collection, docs).await
    }

    /// Writes documents already validated (by [`Engine::upsert_documents`]
    /// or a bulk batch), so that no path checks a document twice.
    pub(crate) async fn write_valid(
        &self,
        collection: CollectionName,
        docs: Vec<Document>,
    ) -> Result<UpsertSummary> {
        let docs: Vec<Document> = docs.into_iter().map(normalise).collect();
        self.inner.storage.check_room()?;

        // Decide what changed and chunk it, off the async workers.
        let tokenizer = self.inner.embedder.counting_tokenizer();
        let max_tokens = self
            .inner
            .embedder
            .max_seq_length()
            .saturating_sub(2)
            .max(1);
        let (coll, pending, unchanged) = self
            .blocking(move |inner| {
                let coll = inner.storage.collection(&collection)?;
                let settings = coll.settings();
                let size = (settings.chunk_size as usize).min(max_tokens);
                let overlap = (settings.chunk_overlap as usize).min(size / 2);
                let mut pending = Vec::new();
                let mut unchanged = 0u64;
                for doc in docs {
                    let hash = content_hash(&doc);
                    if coll.content_hash(&doc.id)?.as_deref() == Some(hash.as_str()) {
                        unchanged += 1;
                        continue;
                    }
                    let chunks = chunk_text(&tokenizer, &doc.text, size, overlap);
                    pending.push((doc, hash, chunks));
                }
                Ok((coll, pending, unchanged))
            })
            .await?;

        let texts: Vec<String> = pending
            .iter()
            .flat_map(|(doc, _, chunks)| chunks.iter().map(|c| embedding_text(&doc.title, c)))
            .collect();
        let embedded = texts.len() as u64;
        // The debug lines around each stage let an operator see where a
        // slow load spends its time (and the crash tests where a kill hit).
        tracing::debug!(chunks = embedded, "embedding chunks");
        let mut vectors = Vec::with_capacity(texts.len());
        for request in texts.chunks(EMBED_REQUEST_TEXTS) {
            vectors.extend(self.inner.embedder.embed(request.to_vec()).await?);
        }
        tracing::debug!(chunks = embedded, "chunks embedded");
        if vectors.len() != texts.len() {
            return Err(EngineError::Internal(format!(
                "the embedder returned {} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        let mut vectors = vectors.into_iter();
        let new_docs: Vec<NewDocument> = pending
            .into_iter()
            .map(|(document, content_hash, chunks)| NewDocument {
                chunks: chunks
                    .into_iter()
                    .zip(vectors.by_ref())
                    .map(|(text, vector)| NewChunk { text, vector })
                    .collect(),
                document,
                content_hash,
            })
            .collect();
        let written = self.blocking(move |_| coll.write(new_docs)).await?;
        let mut summary = UpsertSummary {
            unchanged,
            chunks_written: written.chunks,
            chunks_embedded: embedded,
            ..Default::default()
        };
        for status in written.statuses {
            match status {
                UpsertStatus::Added => summary.added += 1,
                UpsertStatus::Updated => summary.updated += 1,
                UpsertStatus::Unchanged => summary.unchanged += 1,
            }
        }
        Ok(summary)
    }

    /// Reads one document.
    pub async fn get_document(
        &self,
        collection: CollectionName,
        id: String,
    ) -> Result<StoredDocument> {
        self.blocking(move |inner| inner.storage.collection(&collection)?.document(&id))
            .await
    }

    /// Deletes documents by ids or by metadata filter.
    pub async fn delete_documents(
        &self,
        collection: CollectionName,
        selector: DeleteSelector,
    ) -> Result<DeleteSummary> {
        if let DeleteSelector::Filter(f) = &selector {
            f.validate("filter")?;
        }
        self.blocking(move |inner| {
            let removed = inner
                .storage
                .collection(&collection)?
                .delete(match &selector {
                    DeleteSelector::Ids(ids) => Doomed::Ids(ids),
                    DeleteSelector::Filter(filter) => Doomed::Matching(filter),
                })?;
            Ok(DeleteSummary {
                documents: removed.documents,
                chunks: removed.chunks,
            })
        })
        .await
    }
}
