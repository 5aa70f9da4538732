//! `quarry.v1.Rag`: grounded answers, streamed.
//!
//! The handler converts the request, lets the engine retrieve, pack and
//! start the generation (any refusal is the call's status), then maps the
//! engine's events onto the stream. A client that goes away drops the
//! stream, which the engine notices and stops the generation.

use std::pin::Pin;

use quarry_engine::Engine;
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::ask_from_proto;
use super::edge::opening;
use super::{invalid, to_status};
use crate::proto;

/// The client's deadline from its `grpc-timeout` header (an integer and a
/// unit: H, M, S, m, u or n), counted from now.
pub fn deadline(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    std::time::Instant::now().checked_add(super::policy::parse_grpc_timeout(value)?)
}

/// The Rag service.
pub struct RagService {
    engine: Engine,
}

impl RagService {
    /// The service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::rag_server::Rag for RagService {
    type AskStream = Pin<Box<dyn Stream<Item = Result<proto::AskEvent, Status>> + Send>>;

    async fn ask(
        &self,
        request: Request<proto::AskRequest>,
    ) -> Result<Response<Self::AskStream>, Status> {
        crate::metrics::observed("Rag.Ask", async move {
            let who = opening("Rag.Ask", &request)?;
            // The record carries the key's name (empty when auth is off).
            let deadline = deadline(request.metadata());
            let req = ask_from_proto(request.into_inner(), who.name.clone(), deadline)
                .map_err(invalid)?;
            who.may_use(req.collection.as_str())?;
            let events = self.engine.ask(req).await.map_err(to_status)?;
            let stream =
                ReceiverStream::new(events).map(|event| event.map(Into::into).map_err(to_status));
            Ok(Response::new(Box::pin(stream) as Self::AskStream))
        })
        .await
    }
}
