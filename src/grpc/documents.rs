//! `quarry.v1.Documents`: loading, reading and deleting documents.
//!
//! Documents are chunked, embedded, stored durably and indexed. BulkIngest
//! takes a stream of batches and keeps two of them loading at once, so
//! the embedder works on one while the other is chunked, written and
//! indexed; a third waits in the stream, so memory stays flat and the
//! client waits through HTTP/2 flow control instead of buffering. A batch
//! that shares a document id with one still loading waits for it, so the
//! later version always wins. Bad documents are reported and skipped,
//! never half-loaded.

use std::collections::{HashSet, VecDeque};

use quarry_core::{CollectionName, InvalidArgument};
use quarry_engine::{BulkSummary, Engine};
use tokio::task::JoinHandle;
use tonic::{Code, Request, Response, Status, Streaming};

use super::convert::{bulk_batch_from_proto, DeleteDocuments, GetDocument, UpsertDocuments};
use super::{invalid, status, to_status};
use crate::auth::{Principal, Role};
use crate::proto;

/// The loading of one batch, and the ids it holds.
type InFlight = (JoinHandle<Result<BulkSummary, Status>>, HashSet<String>);

/// Batches loading at once.
const BATCHES_IN_FLIGHT: usize = 2;

async fn finish(batch: InFlight, total: &mut BulkSummary) -> Result<(), Status> {
    let summary = batch
        .0
        .await
        .map_err(|e| status(Code::Internal, format!("a bulk batch failed: {e}")))??;
    total.merge(summary);
    Ok(())
}

/// The Documents service.
pub struct DocumentsService {
    engine: Engine,
}

impl DocumentsService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::documents_server::Documents for DocumentsService {
    async fn upsert(
        &self,
        request: Request<proto::UpsertRequest>,
    ) -> Result<Response<proto::UpsertResponse>, Status> {
        crate::metrics::observed("Documents.Upsert", async move {
            let who = Principal::of(&request)?;
            who.require(Role::Writer, "Documents.Upsert")?;
            let req = UpsertDocuments::try_from(request.into_inner()).map_err(invalid)?;
            who.may_use(req.collection.as_str())?;
            let summary = self
                .engine
                .upsert_documents(req.collection, req.documents)
                .await
                .map_err(to_status)?;
            crate::metrics::global().loaded(
                summary.added,
                summary.updated,
                summary.unchanged,
                0,
                summary.chunks_embedded,
            );
            Ok(Response::new(summary.into()))
        })
        .await
    }

    async fn bulk_ingest(
        &self,
        request: Request<Streaming<proto::BulkIngestRequest>>,
    ) -> Result<Response<proto::BulkIngestResponse>, Status> {
        crate::metrics::observed("Documents.BulkIngest", async move {
            let who = Principal::of(&request)?;
            who.require(Role::Writer, "Documents.BulkIngest")?;
            let mut stream = request.into_inner();
            let mut collection: Option<CollectionName> = None;
            let mut total = BulkSummary::default();
            let mut in_flight: VecDeque<InFlight> = VecDeque::new();
            let mut messages = 0usize;
            // A client that goes away mid-stream ends the loop with an error;
            // the batch in flight still completes (its documents are whole),
            // and nothing of the unfinished message is stored.
            while let Some(message) = stream.message().await? {
                messages += 1;
                let (name, docs) = bulk_batch_from_proto(message);
                match (&collection, name.is_empty()) {
                    (None, true) => {
                        return Err(invalid(InvalidArgument::new(
                            "collection",
                            "is required in the first message",
                        )))
                    }
                    (None, false) => {
                        let parsed =
                            CollectionName::parse_field(&name, "collection").map_err(invalid)?;
                        who.may_use(parsed.as_str())?;
                        // Unknown collections fail before any document is read.
                        self.engine
                            .get_collection(parsed.clone())
                            .await
                            .map_err(to_status)?;
                        collection = Some(parsed);
                    }
                    (Some(c), false) if c.as_str() != name => {
                        return Err(invalid(InvalidArgument::new(
                            "collection",
                            format!(
                                "message {messages} names {name:?}, but the stream loads {:?}",
                                c.as_str()
                            ),
                        )))
                    }
                    _ => {}
                }
                let mut batch = Vec::with_capacity(docs.len());
                let mut failed = Vec::new();
                for d in docs {
                    match d {
                        Ok(doc) => batch.push(doc),
                        Err(f) => failed.push(f),
                    }
                }
                total.failed.extend(failed);
                if batch.is_empty() {
                    continue;
                }
                let ids: HashSet<String> = batch.iter().map(|d| d.id.clone()).collect();
                // Oldest first: wait while the pipe is full, and for any batch
                // that holds one of these ids.
                while in_flight.len() >= BATCHES_IN_FLIGHT
                    || in_flight.iter().any(|(_, held)| !held.is_disjoint(&ids))
                {
                    let oldest = in_flight.pop_front().expect("not empty");
                    finish(oldest, &mut total).await?;
                }
                let engine = self.engine.clone();
                let target = collection.clone().expect("set by the first message");
                let task = tokio::spawn(async move {
                    engine.bulk_upsert(target, batch).await.map_err(to_status)
                });
                in_flight.push_back((task, ids));
            }
            while let Some(batch) = in_flight.pop_front() {
                finish(batch, &mut total).await?;
            }
            if collection.is_none() {
                return Err(invalid(InvalidArgument::new(
                    "collection",
                    "the stream sent no message",
                )));
            }
            let BulkSummary {
                added,
                updated,
                unchanged,
                chunks_written,
                chunks_embedded,
                failed,
            } = total;
            crate::metrics::global().loaded(
                added,
                updated,
                unchanged,
                failed.len() as u64,
                chunks_embedded,
            );
            Ok(Response::new(proto::BulkIngestResponse {
                added,
                updated,
                unchanged,
                chunks_written,
                chunks_embedded,
                failed: failed
                    .into_iter()
                    .map(|(document_id, reason)| proto::IngestFailure {
                        document_id,
                        reason,
                    })
                    .collect(),
            }))
        })
        .await
    }

    async fn get_document(
        &self,
        request: Request<proto::GetDocumentRequest>,
    ) -> Result<Response<proto::Document>, Status> {
        crate::metrics::observed("Documents.GetDocument", async move {
            let who = Principal::of(&request)?;
            who.require(Role::Reader, "Documents.GetDocument")?;
            let req = GetDocument::try_from(request.into_inner()).map_err(invalid)?;
            who.may_use(req.collection.as_str())?;
            let doc = self
                .engine
                .get_document(req.collection, req.id)
                .await
                .map_err(to_status)?;
            Ok(Response::new(doc.into()))
        })
        .await
    }

    async fn delete_documents(
        &self,
        request: Request<proto::DeleteDocumentsRequest>,
    ) -> Result<Response<proto::DeleteDocumentsResponse>, Status> {
        crate::metrics::observed("Documents.DeleteDocuments", async move {
            let who = Principal::of(&request)?;
            who.require(Role::Writer, "Documents.DeleteDocuments")?;
            let req = DeleteDocuments::try_from(request.into_inner()).map_err(invalid)?;
            who.may_use(req.collection.as_str())?;
            let summary = self
                .engine
                .delete_documents(req.collection, req.selector)
                .await
                .map_err(to_status)?;
            Ok(Response::new(summary.into()))
        })
        .await
    }
}
