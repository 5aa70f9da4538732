//! Bulk loading: batches of documents where a bad document is reported
//! and skipped instead of failing the batch, as a loader of real corpora
//! needs. Valid documents go through the same path as Upsert (content
//! hash, chunking, embedding, one flushed transaction per group), so a
//! document is either entirely stored or not at all.
//!
//! [`Engine::bulk_ingest`] schedules a stream of batches: two load at
//! once, so the embedder works on one while the other is chunked, written
//! and indexed; the next waits in the stream, so memory stays flat and a
//! network client waits through flow control instead of buffering. A
//! batch that shares a document id with one still loading waits for it,
//! so the later version always wins.

use std::collections::{HashSet, VecDeque};

use quarry_core::{CollectionName, Document};
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};

use crate::{validate_document, Engine, EngineError, Result};

/// Batches loading at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// One message of a bulk load: its documents, and the ones the caller
/// could not even convert (id, reason), which are reported as failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkBatch {
    /// Documents to load.
    pub documents: Vec<Document>,
    /// Documents refused before the engine saw them.
    pub failed: Vec<(String, String)>,
}

/// Why a bulk load stopped: the engine failed, or the stream of batches
/// did (a client that went away). Batches already loading complete
/// either way: their documents are whole.
#[derive(Debug)]
pub enum BulkError<E> {
    /// The engine failed (storage, models, an unknown collection).
    Engine(EngineError),
    /// The source of the batches failed.
    Source(E),
}

/// The loading of one batch, and the ids it holds.
type InFlight = (JoinHandle<Result<BulkSummary>>, HashSet<String>);

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
    /// Loads a stream of batches into `collection` (see the module docs)
    /// and sums what they did. An unknown collection fails before the
    /// first batch is read.
    pub async fn bulk_ingest<S, E>(
        &self,
        collection: CollectionName,
        mut batches: S,
    ) -> Result<BulkSummary, BulkError<E>>
    where
        S: Stream<Item = std::result::Result<BulkBatch, E>> + Unpin,
    {
        self.get_collection(collection.clone())
            .await
            .map_err(BulkError::Engine)?;
        let mut total = BulkSummary::default();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        while let Some(batch) = batches.next().await {
            let BulkBatch { documents, failed } = batch.map_err(BulkError::Source)?;
            total.failed.extend(failed);
            if documents.is_empty() {
                continue;
            }
            let ids: HashSet<String> = documents.iter().map(|d| d.id.clone()).collect();
            // Oldest first: wait while the pipe is full, and for any batch
            // that holds one of these ids.
            while in_flight.len() >= BATCHES_IN_FLIGHT
                || in_flight.iter().any(|(_, held)| !held.is_disjoint(&ids))
            {
                let Some(oldest) = in_flight.pop_front() else {
                    break;
                };
                total.merge(join(oldest).await.map_err(BulkError::Engine)?);
            }
            let engine = self.clone();
            let target = collection.clone();
            let task = tokio::spawn(async move { engine.bulk_upsert(target, documents).await });
            in_flight.push_back((task, ids));
        }
        while let Some(batch) = in_flight.pop_front() {
            total.merge(join(batch).await.map_err(BulkError::Engine)?);
        }
        Ok(total)
    }

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
            let s = self.write_valid(collection.clone(), group).await?;
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

async fn join(batch: InFlight) -> Result<BulkSummary> {
    batch
        .0
        .await
        .map_err(|e| EngineError::Internal(format!("a bulk batch failed: {e}")))?
}
