//! The gRPC server: one module per `quarry.v1` service, the conversions
//! between wire messages and engine types, the single mapping of engine
//! errors onto `tonic::Status`, and the router with health and reflection.
//!
//! Handlers are thin: [`edge`] does their common opening (role from one
//! table, principal, metrics, conversion, allow-list, error mapping);
//! they convert (which validates), call the engine, convert back.

mod collections;
mod convert;
mod documents;
mod edge;
mod history;
mod policy;
mod rag;
mod retrieval;
mod status;

pub use collections::CollectionsService;
pub use documents::DocumentsService;
pub use history::HistoryService;
pub use rag::{deadline, RagService};
pub use retrieval::RetrievalService;

/// The wire filter's conversion, which validates untrusted input (fuzzed by
/// fuzz/fuzz_targets/filter.rs).
pub use convert::filter_from_proto;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use quarry_engine::Engine;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::auth::Authenticator;

use crate::proto;
use proto::collections_server::CollectionsServer;
use proto::documents_server::DocumentsServer;
use proto::history_server::HistoryServer;
use proto::rag_server::RagServer;
use proto::retrieval_server::RetrievalServer;

pub use convert::filter_to_proto;
pub use status::{invalid, status, to_status};

/// The fully qualified names of every `quarry.v1` service, as reflection and
/// health report them.
pub const SERVICE_NAMES: [&str; 5] = [
    "quarry.v1.Collections",
    "quarry.v1.Documents",
    "quarry.v1.Retrieval",
    "quarry.v1.Rag",
    "quarry.v1.History",
];

/// One instance of each `quarry.v1` service implementation, shared by the
/// gRPC server and the HTTP API (which calls the same methods).
#[derive(Clone)]
pub struct Services {
    /// Collections.
    pub collections: Arc<CollectionsService>,
    /// Documents.
    pub documents: Arc<DocumentsService>,
    /// Retrieval.
    pub retrieval: Arc<RetrievalService>,
    /// Rag.
    pub rag: Arc<RagService>,
    /// History.
    pub history: Arc<HistoryService>,
    /// The engine they share (health of its storage).
    pub engine: Engine,
}

impl Services {
    /// The services over `engine`.
    pub fn new(engine: &Engine) -> Self {
        Self {
            collections: Arc::new(CollectionsService::new(engine.clone())),
            documents: Arc::new(DocumentsService::new(engine.clone())),
            retrieval: Arc::new(RetrievalService::new(engine.clone())),
            rag: Arc::new(RagService::new(engine.clone())),
            history: Arc::new(HistoryService::new(engine.clone())),
            engine: engine.clone(),
        }
    }
}

/// BulkIngest over any stream of messages (the HTTP API's JSON lines).
pub async fn bulk_ingest<S>(
    services: &Services,
    request: tonic::Request<S>,
) -> Result<tonic::Response<proto::BulkIngestResponse>, tonic::Status>
where
    S: tokio_stream::Stream<Item = Result<proto::BulkIngestRequest, tonic::Status>>
        + Send
        + Unpin
        + 'static,
{
    services.documents.bulk_ingest_stream(request).await
}

/// Transport settings of the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest message a client may send, and the server may send, in bytes.
    pub max_message_bytes: usize,
    /// Who may call (API keys), or nobody checked.
    pub auth: Authenticator,
    /// TLS (and mTLS) settings; plain text when `None`.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

/// How often the storage backend's health is asked.
const STORAGE_HEALTH_EVERY: Duration = Duration::from_secs(2);

/// Turns health NOT_SERVING while the storage backend cannot serve (a
/// Qdrant cluster out of reach) and SERVING again when it can, so that
/// load balancers and probes route around a node that would only answer
/// UNAVAILABLE.
async fn watch_storage(engine: Engine, health: tonic_health::server::HealthReporter) {
    let mut serving = true;
    loop {
        tokio::time::sleep(STORAGE_HEALTH_EVERY).await;
        let now = match tokio::time::timeout(Duration::from_secs(15), engine.storage_health()).await
        {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                if serving {
                    tracing::error!(error = %e, "storage unavailable: health NOT_SERVING");
                }
                false
            }
            Err(_) => {
                if serving {
                    tracing::error!("storage health check timed out: health NOT_SERVING");
                }
                false
            }
        };
        if now == serving {
            continue;
        }
        serving = now;
        let status = if now {
            tracing::info!("storage available again: health SERVING");
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for name in SERVICE_NAMES.into_iter().chain([""]) {
            health.set_service_status(name, status).await;
        }
    }
}

/// Serves every service on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight calls finish, and returns.
pub async fn serve(
    services: Services,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled descriptors are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the compiled descriptors are valid");

    let max = options.max_message_bytes;
    let auth = options.auth;
    let watcher = tokio::spawn(watch_storage(services.engine.clone(), health.clone()));
    // Health and reflection stay open; every Quarry service checks keys.
    let shutdown = async move {
        shutdown.await;
        watcher.abort();
        // Tell load balancers first, then stop accepting.
        for name in SERVICE_NAMES {
            health
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };

    let mut builder = Server::builder();
    if let Some(tls) = options.tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .layer(tower_layer::layer_fn(policy::ReplyPolicy))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            CollectionsServer::from_arc(Arc::clone(&services.collections))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            DocumentsServer::from_arc(Arc::clone(&services.documents))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            RetrievalServer::from_arc(Arc::clone(&services.retrieval))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            RagServer::from_arc(Arc::clone(&services.rag))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            HistoryServer::from_arc(services.history)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth,
        ))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}

/// Accepted connections with Nagle's algorithm off: a small response
/// otherwise waits for the client's delayed ACK, which measured here as a
/// 40 ms floor on every unary call.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        Ok(stream)
    })
}
