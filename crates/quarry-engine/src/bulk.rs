//! Bulk loading: batches of documents where a bad document is reported
//! and skipped instead of failing the batch, as a loader of real corpora
//! needs. Valid documents go through the same path as Upsert (content
//! hash, chunking, embedding, one flushed transaction per group), so a
//! document is either entirely stored or not at all.

use std::collections::HashSet;

use quarry_core::{CollectionName, Document};

use crate::{validate_document, Engine, Result};

/// What one bulk batch (or a whole load) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkSummary {
    /// Documents that did not exist.
    pub added: u64,
    /// Documents whose content changed.
    pub updated: u64,
    /// Documents stored with the same content: nothing done.
    pub unchanged: u64,
    /// Chunks written.
    pub chunks_written: u64,
    /// Chunk texts embedded.
    pub chunks_embedded: u64,
    /// Documents not loaded: (id, reason).
    pub failed: Vec<(String, String)>,
}

impl BulkSummary {
    /// Adds another batch's counts.
    pub fn merge(&mut self, other: BulkSummary) {
        self.added += other.added;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.chunks_written += other.chunks_written;
        self.chunks_embedded += other.chunks_embedded;
        self.failed.extend(other.failed);
    }
}

impl Engine {
    /// Loads the valid documents of a batch; invalid ones (and second
    /// occurrences of an id within the batch) are listed in `failed`.
    /// Failures of the server itself (storage, models) fail the call.
    pub async fn bulk_upsert(
        &self,
        collection: CollectionName,
        docs: Vec<Document>,
    ) -> Result<BulkSummary> {
        let limits = self.inner.document_limits;
        let mut summary = BulkSummary::default();
        let mut seen = HashSet::with_capacity(docs.len());
        let mut valid = Vec::with_capacity(docs.len());
        for doc in docs {
            if let Err(e) = validate_document(&doc, "document", &limits) {
                summary.failed.push((doc.id, e.to_string()));
            } else if !seen.insert(doc.id.clone()) {
                summary
                    .failed
                    .push((doc.id, "appears more than once in the same batch".into()));
            } else {
                valid.push(doc);
            }
        }
        let mut valid = valid.into_iter().peekable();
        while valid.peek().is_some() {
            let group: Vec<Document> = valid.by_ref().take(limits.max_documents).collect();
            let s = self.upsert_documents(collection.clone(), group).await?;
            summary.merge(BulkSummary {
                added: s.added,
                updated: s.updated,
                unchanged: s.unchanged,
                chunks_written: s.chunks_written,
                chunks_embedded: s.chunks_embedded,
                failed: Vec::new(),
            });
        }
        Ok(summary)
    }
}
