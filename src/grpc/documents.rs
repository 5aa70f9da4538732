//! `quarry.v1.Documents`: loading, reading and deleting documents.
//!
//! Documents are chunked, embedded, stored durably and indexed. BulkIngest
//! hands its stream of batches to [`Engine::bulk_ingest`], which schedules
//! them (two loading at once, later versions of an id after earlier ones);
//! the handler checks the collection each message names. Bad documents
//! are reported and skipped, never half-loaded.

use quarry_core::{CollectionName, InvalidArgument};
use quarry_engine::{BulkError, BulkSummary, Engine};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{bulk_batch_from_proto, DeleteDocuments, GetDocument, UpsertDocuments};
use super::edge::{opening, unary};
use super::{invalid, to_status};
use crate::proto;

/// The Documents service.
pub struct DocumentsService {
    engine: Engine,
}

impl DocumentsService {
    /// The service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// BulkIngest over any stream of messages: a gRPC client stream, or
    /// the HTTP API's JSON lines.
    pub async fn bulk_ingest_stream<S>(
        &self,
        request: Request<S>,
    ) -> Result<Response<proto::BulkIngestResponse>, Status>
    where
        S: Stream<Item = Result<proto::BulkIngestRequest, Status>> + Send + Unpin + 'static,
    {
        crate::metrics::observed("Documents.BulkIngest", async move {
            let who = opening("Documents.BulkIngest", &request)?;
            let mut stream = request.into_inner();
            // The first message names the collection; a client that goes
            // away mid-stream ends the load with its error, the batches in
            // flight still complete, and nothing of the unfinished message
            // is stored.
            let Some(first) = stream.next().await.transpose()? else {
                return Err(invalid(InvalidArgument::new(
                    "collection",
                    "the stream sent no message",
                )));
            };
            let (name, first) = bulk_batch_from_proto(first);
            if name.is_empty() {
                return Err(invalid(InvalidArgument::new(
                    "collection",
                    "is required in the first message",
                )));
            }
            let collection = CollectionName::parse_field(&name, "collection").map_err(invalid)?;
            who.may_use(collection.as_str())?;
            let loads = collection.as_str().to_owned();
            let mut messages = 1usize;
            let rest = stream.map(move |message| {
                messages += 1;
                let (name, batch) = bulk_batch_from_proto(message?);
                if !name.is_empty() && name != loads {
                    return Err(invalid(InvalidArgument::new(
                        "collection",
                        format!(
                            "message {messages} names {name:?}, but the stream loads {loads:?}"
                        ),
                    )));
                }
                Ok(batch)
            });
            let batches = tokio_stream::once(Ok(first)).chain(rest);
            let total =
                self.engine
                    .bulk_ingest(collection, batches)
                    .await
                    .map_err(|e| match e {
                        BulkError::Engine(e) => to_status(e),
                        BulkError::Source(status) => status,
                    })?;
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
}

#[tonic::async_trait]
impl proto::documents_server::Documents for DocumentsService {
    async fn upsert(
        &self,
        request: Request<proto::UpsertRequest>,
    ) -> Result<Response<proto::UpsertResponse>, Status> {
        unary(
            "Documents.Upsert",
            request,
            |_, req: UpsertDocuments| async move {
                let summary = self
                    .engine
                    .upsert_documents(req.collection, req.documents)
                    .await?;
                crate::metrics::global().loaded(
                    summary.added,
                    summary.updated,
                    summary.unchanged,
                    0,
                    summary.chunks_embedded,
                );
                Ok(summary)
            },
        )
        .await
    }

    async fn bulk_ingest(
        &self,
        request: Request<Streaming<proto::BulkIngestRequest>>,
    ) -> Result<Response<proto::BulkIngestResponse>, Status> {
        self.bulk_ingest_stream(request).await
    }

    async fn get_document(
        &self,
        request: Request<proto::GetDocumentRequest>,
    ) -> Result<Response<proto::Document>, Status> {
        unary("Documents.GetDocument", request, |_, req: GetDocument| {
            self.engine.get_document(req.collection, req.id)
        })
        .await
    }

    async fn delete_documents(
        &self,
        request: Request<proto::DeleteDocumentsRequest>,
    ) -> Result<Response<proto::DeleteDocumentsResponse>, Status> {
        unary(
            "Documents.DeleteDocuments",
            request,
            |_, req: DeleteDocuments| self.engine.delete_documents(req.collection, req.selector),
        )
        .await
    }
}
