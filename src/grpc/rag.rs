//! `quarry.v1.Rag`: grounded answers, streamed.
//!
//! Not yet served: Ask needs retrieval and the generator. Until then it
//! answers UNIMPLEMENTED naming what it waits for.

use std::pin::Pin;

use quarry_engine::Engine;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::not_yet;
use crate::proto;

/// The Rag service.
pub struct RagService {
    #[allow(dead_code)] // used once Ask is served
    engine: Engine,
}

impl RagService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::rag_server::Rag for RagService {
    type AskStream = Pin<Box<dyn Stream<Item = Result<proto::AskEvent, Status>> + Send>>;

    async fn ask(
        &self,
        _request: Request<proto::AskRequest>,
    ) -> Result<Response<Self::AskStream>, Status> {
        Err(not_yet(
            "Rag.Ask",
            "grounded generation (retrieval plus the candle decoder)",
        ))
    }
}
