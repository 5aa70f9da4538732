//! `quarry.v1.Documents`: loading, reading and deleting documents.
//!
//! Upsert, GetDocument and DeleteDocuments are served; documents are
//! chunked, embedded and stored durably (the search indexes that read them
//! land with hybrid retrieval). BulkIngest answers UNIMPLEMENTED until the
//! bulk loader lands.

use quarry_engine::Engine;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{DeleteDocuments, GetDocument, UpsertDocuments};
use super::{invalid, not_yet, to_status};
use crate::proto;

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
        let req = UpsertDocuments::try_from(request.into_inner()).map_err(invalid)?;
        let summary = self
            .engine
            .upsert_documents(req.collection, req.documents)
            .await
            .map_err(to_status)?;
        Ok(Response::new(summary.into()))
    }

    async fn bulk_ingest(
        &self,
        _request: Request<Streaming<proto::BulkIngestRequest>>,
    ) -> Result<Response<proto::BulkIngestResponse>, Status> {
        Err(not_yet("Documents.BulkIngest", "the bulk loader"))
    }

    async fn get_document(
        &self,
        request: Request<proto::GetDocumentRequest>,
    ) -> Result<Response<proto::Document>, Status> {
        let req = GetDocument::try_from(request.into_inner()).map_err(invalid)?;
        let doc = self
            .engine
            .get_document(req.collection, req.id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(doc.into()))
    }

    async fn delete_documents(
        &self,
        request: Request<proto::DeleteDocumentsRequest>,
    ) -> Result<Response<proto::DeleteDocumentsResponse>, Status> {
        let req = DeleteDocuments::try_from(request.into_inner()).map_err(invalid)?;
        let summary = self
            .engine
            .delete_documents(req.collection, req.selector)
            .await
            .map_err(to_status)?;
        Ok(Response::new(summary.into()))
    }
}
