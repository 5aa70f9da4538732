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
mod rag;
mod retrieval;
mod status;

/// The wire filter's conversion, which validates untrusted input (fuzzed by
/// fuzz/fuzz_targets/filter.rs).
pub use convert::filter_from_proto;

use std::future::Future;
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

/// Serves every service on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight calls finish, and returns.
pub async fn serve(
    engine: Engine,
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
    // Health and reflection stay open; every Quarry service checks keys.
    let shutdown = async move {
        shutdown.await;
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
        .layer(tower_layer::layer_fn(ReplyPolicy))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            CollectionsServer::new(collections::CollectionsService::new(engine.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            DocumentsServer::new(documents::DocumentsService::new(engine.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            RetrievalServer::new(retrieval::RetrievalService::new(engine.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            RagServer::new(rag::RagService::new(engine.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            HistoryServer::new(history::HistoryService::new(engine))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            auth,
        ))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}

/// The longest any call may take, whatever its client asks: it bounds even
/// the longest bulk load.
const MAX_CALL: Duration = Duration::from_secs(24 * 3600);

/// What every call's reply gets, in one layer:
///
/// - Each client's `grpc-timeout` is honoured: a call whose response has
///   not started by its deadline is dropped (its handler cancelled) and
///   answered DEADLINE_EXCEEDED, as gRPC specifies. tonic's own server
///   timeout answers CANCELLED instead, so it is not used. A streamed
///   response (Ask) has started once its first message is ready; the
///   engine watches its deadline from there.
/// - tonic's OUT_OF_RANGE for a message over the size limit becomes
///   RESOURCE_EXHAUSTED, the code this API promises for a limit (the
///   message, which names both sizes, is kept). Nothing else in Quarry
///   answers OUT_OF_RANGE.
#[derive(Clone)]
struct ReplyPolicy<S>(S);

impl<S, B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for ReplyPolicy<S>
where
    S: tonic::codegen::Service<
        tonic::codegen::http::Request<B>,
        Response = tonic::codegen::http::Response<tonic::body::Body>,
    >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let limit = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(MAX_CALL, |t| t.min(MAX_CALL));
        let response = self.0.call(request);
        Box::pin(async move {
            let Ok(response) = tokio::time::timeout(limit, response).await else {
                return Ok(tonic::Status::deadline_exceeded(format!(
                    "the call's deadline ({} ms) passed before it finished",
                    limit.as_millis()
                ))
                .into_http());
            };
            let mut response = response?;
            let headers = response.headers_mut();
            if headers.get("grpc-status").is_some_and(|v| v == "11") {
                headers.insert(
                    "grpc-status",
                    tonic::codegen::http::HeaderValue::from_static("8"),
                );
            }
            Ok(response)
        })
    }
}

/// A `grpc-timeout` value: up to eight digits and a unit (H, M, S, m, u,
/// n); `None` when malformed (the call then runs without a deadline of its
/// own, as the gRPC spec leaves it).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codegen::http;
    use tonic::codegen::Service;

    /// A handler that never answers.
    struct Never;

    impl Service<http::Request<()>> for Never {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::pending()
        }
    }

    /// The server's own answer at the deadline (a tonic client races it
    /// with its own timer and may report CANCELLED first, so the end-to-end
    /// tests accept either).
    #[tokio::test]
    async fn a_call_past_its_deadline_is_answered_deadline_exceeded() {
        let request = http::Request::builder()
            .header("grpc-timeout", "20m")
            .body(())
            .unwrap();
        let response = ReplyPolicy(Never).call(request).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "4");
        let message = response.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("deadline"), "{message}");
    }

    #[test]
    fn grpc_timeouts_parse_by_the_spec() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "5", "123456789S", "-5S", "5s", "1.5S", "5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
