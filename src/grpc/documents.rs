//! `quarry.v1.Documents`: loading, reading and deleting documents.
//!
//! Not yet served: these methods need chunking, embeddings and the indexes
//! (the hybrid retrieval and bulk loader capabilities). Until then each
//! answers UNIMPLEMENTED naming what it waits for.

use quarry_engine::Engine;
use tonic::{Request, Response, Status, Streaming};

use super::not_yet;
use crate::proto;

const RETRIEVAL: &str = "hybrid retrieval (embeddings, HNSW and BM25 indexes)";

/// The Documents service.
pub struct DocumentsService {
    #[allow(dead_code)] // used once documents are served
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
        _request: Request<proto::UpsertRequest>,
    ) -> Result<Response<proto::UpsertResponse>, Status> {
        Err(not_yet("Documents.Upsert", RETRIEVAL))
    }

    async fn bulk_ingest(
        &self,
        _request: Request<Streaming<proto::BulkIngestRequest>>,
    ) -> Result<Response<proto::BulkIngestResponse>, Status> {
        Err(not_yet("Documents.BulkIngest", "the bulk loader"))
    }

    async fn get_document(
        &self,
        _request: Request<proto::GetDocumentRequest>,
    ) -> Result<Response<proto::Document>, Status> {
        Err(not_yet("Documents.GetDocument", RETRIEVAL))
    }

    async fn delete_documents(
        &self,
        _request: Request<proto::DeleteDocumentsRequest>,
    ) -> Result<Response<proto::DeleteDocumentsResponse>, Status> {
        Err(not_yet("Documents.DeleteDocuments", RETRIEVAL))
    }
}
