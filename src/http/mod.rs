//! The HTTP listener (`--http-listen`): the REST/JSON API over the same
//! service implementations as gRPC ([`rest`], [`call`]), in the same
//! process, behind the same API keys, roles, limits, deadlines, request
//! ids and metrics. Errors are JSON with the HTTP status matching the
//! gRPC code ([`error`]). gRPC-Web (tonic-web) is served on the same
//! port for browser gRPC clients.
//!
//! Connections are served by hyper (HTTP/1.1 and HTTP/2, as tonic is),
//! with TLS when the server has it; on shutdown the listener closes and
//! connections finish their in-flight requests.

pub mod call;
mod console;
pub mod error;
mod lines;
pub mod openai;
pub mod openapi;
pub mod rest;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::grpc::Services;
use error::ApiError;
pub use rest::Api;

/// Settings of the HTTP listener.
#[derive(Clone)]
pub struct HttpOptions {
    /// Who may call.
    pub auth: Authenticator,
    /// Largest request body (and JSON line of a bulk load), in bytes.
    pub max_body_bytes: usize,
    /// TLS, when the server has it.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

/// Every route of the HTTP listener: the REST API, and gRPC-Web for
/// browser gRPC clients (the same services, keys and limits as gRPC).
pub fn router(services: Services, options: &HttpOptions) -> Router {
    let api = Api::new(
        services.clone(),
        options.auth.clone(),
        options.max_body_bytes,
    );
    let rest = rest::routes()
        .merge(openai::routes())
        .merge(console::routes())
        .route("/openapi.json", axum::routing::get(openapi_json))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(api);
    grpc_web(&services, options).merge(rest).fallback(not_found)
}

/// Readiness for probes and load balancers: 200 while the storage backend
/// can serve, 503 naming the problem while it cannot (a Qdrant cluster out
/// of reach). `/healthz` is liveness: the process answers.
async fn readyz(
    axum::extract::State(api): axum::extract::State<Api>,
) -> (axum::http::StatusCode, String) {
    match api.services().engine.storage_health().await {
        Ok(()) => (axum::http::StatusCode::OK, "ready".into()),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            crate::grpc::to_status(e).message().to_owned(),
        ),
    }
}

/// The five `quarry.v1` services as gRPC-Web (tonic-web: why, the
/// maintained translation layer of tonic itself). The layer wraps each
/// service only: it answers 400 to any HTTP/1.1 request that is not
/// gRPC-Web, which must not reach the REST routes.
fn grpc_web(services: &Services, options: &HttpOptions) -> Router {
    use crate::proto::{
        collections_server::CollectionsServer, documents_server::DocumentsServer,
        history_server::HistoryServer, rag_server::RagServer, retrieval_server::RetrievalServer,
    };
    use tonic::service::interceptor::InterceptedService;
    use tower_layer::Layer;
    let web = tonic_web::GrpcWebLayer::new();
    let auth = &options.auth;
    let max = options.max_body_bytes;
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(
            web.layer(InterceptedService::new(
                CollectionsServer::from_arc(Arc::clone(&services.collections))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                auth.clone(),
            )),
        )
        .add_service(
            web.layer(InterceptedService::new(
                DocumentsServer::from_arc(Arc::clone(&services.documents))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                auth.clone(),
            )),
        )
        .add_service(
            web.layer(InterceptedService::new(
                RetrievalServer::from_arc(Arc::clone(&services.retrieval))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                auth.clone(),
            )),
        )
        .add_service(
            web.layer(InterceptedService::new(
                RagServer::from_arc(Arc::clone(&services.rag))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                auth.clone(),
            )),
        )
        .add_service(
            web.layer(InterceptedService::new(
                HistoryServer::from_arc(Arc::clone(&services.history))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                auth.clone(),
            )),
        );
    routes.routes().into_axum_router()
}

async fn openapi_json() -> Response {
    axum::Json(openapi::document()).into_response()
}

async fn not_found(request: Request) -> Response {
    ApiError::from(tonic::Status::not_found(format!(
        "no route {} {}; the API is under /v1 (see /openapi.json)",
        request.method(),
        request.uri().path()
    )))
    .into_response()
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting and waits for the open connections to finish.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let builder = Builder::new(TokioExecutor::new());
        match &acceptor {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended");
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
