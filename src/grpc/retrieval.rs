//! `quarry.v1.Retrieval`: search and embeddings.
//!
//! Search is not served yet: it needs the hybrid indexes, and answers
//! UNIMPLEMENTED naming them until they land.

use quarry_engine::Engine;
use tonic::{Request, Response, Status};

use super::{not_yet, to_status};
use crate::proto;

/// The Retrieval service.
pub struct RetrievalService {
    engine: Engine,
}

impl RetrievalService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::retrieval_server::Retrieval for RetrievalService {
    async fn search(
        &self,
        _request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        Err(not_yet(
            "Retrieval.Search",
            "hybrid retrieval (embeddings, HNSW and BM25 indexes)",
        ))
    }

    async fn embed(
        &self,
        request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        let proto::EmbedRequest { texts } = request.into_inner();
        let embeddings = self.engine.embed(texts).await.map_err(to_status)?;
        Ok(Response::new(embeddings.into()))
    }
}
