//! The client subcommands: each connects to a running server over gRPC,
//! prints human output by default and JSON with `--json`.

pub mod ask;
pub mod bench;
pub mod collections;
pub mod embed;
pub mod eval;
pub mod eval_ask;
pub mod history;
pub mod ingest;
pub mod keys;
pub mod migrate;
pub mod models;
pub mod quickstart;
pub mod search;

use std::time::Duration;

use std::task::{Context as TaskContext, Poll};

use anyhow::Context;
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};

/// Default server address of every client subcommand.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// Flags every client subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server's address.
    #[arg(long, env = "QUARRY_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,

    /// Print JSON instead of human-readable text.
    #[arg(long)]
    pub json: bool,

    /// The API key, sent as `authorization: Bearer KEY` (prefer the
    /// environment variable: command lines are visible to other users).
    #[arg(long, env = "QUARRY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// TLS (an https:// address): the CA that signed the server's
    /// certificate (PEM); the public web roots when absent.
    #[arg(long, env = "QUARRY_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,

    /// mTLS: this client's certificate (PEM), with --client-key.
    #[arg(long, env = "QUARRY_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,

    /// mTLS: this client's private key (PEM).
    #[arg(long, env = "QUARRY_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
}

/// A channel that sends the API key with every call.
#[derive(Clone)]
pub struct AuthChannel {
    inner: Channel,
    authorization: Option<http::HeaderValue>,
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for AuthChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as tonic::codegen::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        tonic::codegen::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(value) = &self.authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        self.inner.call(request)
    }
}

/// Largest reply a client accepts: the server's default limit, so that
/// replies the server may send are never refused here.
const CLIENT_MAX_MESSAGE_BYTES: usize = quarry::config::DEFAULT_MAX_MESSAGE_BYTES;

impl ClientArgs {
    /// The receive limit for replies.
    pub fn max_message_bytes(&self) -> usize {
        CLIENT_MAX_MESSAGE_BYTES
    }

    /// Connects to the server (failing fast when it cannot be reached); the
    /// channel carries the API key, if any.
    pub async fn connect(&self) -> anyhow::Result<AuthChannel> {
        let authorization = match &self.api_key {
            Some(key) => {
                let mut value = http::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                    .map_err(|_| {
                        anyhow::anyhow!("--api-key / QUARRY_API_KEY is not valid header text")
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(AuthChannel {
            inner: self.channel().await?,
            authorization,
        })
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        let mut endpoint = Endpoint::from_shared(self.addr.clone())
            .with_context(|| format!("--addr {:?} is not a valid URI", self.addr))?
            .connect_timeout(Duration::from_secs(5));
        if self.addr.starts_with("https://") {
            let read = |p: &std::path::Path| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let mut tls = tonic::transport::ClientTlsConfig::new();
            tls = match &self.ca_file {
                Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
                None => tls.with_webpki_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            endpoint = endpoint.tls_config(tls).context("TLS settings")?;
        }
        endpoint.connect().await.with_context(|| {
            format!(
                "cannot reach a quarry server at {} (start one with `quarry serve`, or set --addr / QUARRY_ADDR)",
                self.addr
            )
        })
    }
}

/// Turns a failed call into an error that shows its status code.
pub fn call_failed(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// Formats ms since the epoch as RFC 3339 (UTC, seconds).
pub fn format_time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses a `--filter` JSON argument into the API's filter message, via the
/// server's own filter type so that the syntax is the one documented there.
pub fn filter_arg(text: &str) -> anyhow::Result<quarry::proto::Filter> {
    let filter: quarry_core::Filter = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("--filter is not a valid filter: {e}"))?;
    filter
        .validate("--filter")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(quarry::grpc::filter_to_proto(filter))
}
