//! `quarry.v1.Retrieval`: search and embeddings.
//!
//! Both are served: Search over the collection's in-memory indexes (built
//! from the store at start), Embed with the sentence embedder.

use quarry_engine::Engine;
use tonic::{Request, Response, Status};

use quarry_engine::SearchRequest;

use super::edge::{opening, unary};
use super::to_status;
use crate::proto;

/// The Retrieval service.
pub struct RetrievalService {
    engine: Engine,
}

impl RetrievalService {
    /// The service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::retrieval_server::Retrieval for RetrievalService {
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let started = std::time::Instant::now();
        unary(
            "Retrieval.Search",
            request,
            |_, req: SearchRequest| async move {
                let hits = self.engine.search(req).await?;
                Ok(proto::SearchResponse {
                    hits: hits.into_iter().map(Into::into).collect(),
                    took_ms: started.elapsed().as_secs_f64() * 1000.0,
                })
            },
        )
        .await
    }

    async fn embed(
        &self,
        request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        crate::metrics::observed("Retrieval.Embed", async move {
            opening("Retrieval.Embed", &request)?;
            let proto::EmbedRequest { texts } = request.into_inner();
            let embeddings = self.engine.embed(texts).await.map_err(to_status)?;
            Ok(Response::new(embeddings.into()))
        })
        .await
    }
}
