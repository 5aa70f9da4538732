//! `quarry.v1.Retrieval`: search and embeddings.
//!
//! Not yet served: Embed needs the sentence-embedding model and Search the
//! hybrid indexes. Until then each answers UNIMPLEMENTED naming what it
//! waits for.

use quarry_engine::Engine;
use tonic::{Request, Response, Status};

use super::not_yet;
use crate::proto;

/// The Retrieval service.
pub struct RetrievalService {
    #[allow(dead_code)] // used once retrieval is served
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
        _request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        Err(not_yet("Retrieval.Embed", "sentence embeddings on candle"))
    }
}
