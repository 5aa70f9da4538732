//! The Server section: where `quarry serve` listens, its data directory,
//! its messages, its shutdown and its metrics port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{in_range, section, ConfigError};

/// Default listen address: loopback only, a safe default for a server that
/// holds private documents. Use 0.0.0.0:50051 to accept remote clients.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default HTTP address: loopback only, like the gRPC one.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "quarry-data";
/// Default largest gRPC message, both directions: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
const MIN_MESSAGE_BYTES: usize = 64 * 1024;
const MAX_MESSAGE_BYTES: usize = 1024 * 1024 * 1024;
/// Default time in-flight calls get to finish after a stop signal.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

section! {
/// `quarry serve` settings: the server: where it listens, its data, its messages and its shutdown.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address to listen on, HOST:PORT. Port 0 picks a free port; the bound
    /// address is printed on standard output as `listening on ADDR`.
    /// [default: 127.0.0.1:50051]
    #[arg(long, env = "QUARRY_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Data directory: the store and the indexes live here. One server per
    /// directory. [default: ./quarry-data]
    #[arg(long, env = "QUARRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Largest gRPC message accepted or sent, in bytes (65536 to
    /// 1073741824). [default: 16777216]
    #[arg(long, env = "QUARRY_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Seconds that in-flight calls get to finish after SIGTERM or Ctrl-C
    /// before the server stops anyway. [default: 30]
    #[arg(long, env = "QUARRY_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,

    /// HTTP listener, HOST:PORT, for the REST/JSON API under /v1 (same
    /// keys, roles and limits as gRPC), or "none". Port 0 picks a free
    /// port; the bound address is printed as `http on ADDR`.
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "QUARRY_HTTP_LISTEN")]
    pub http_listen: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics (a separate port,
    /// no keys: keep it on a private network). Off when unset.
    #[arg(long, env = "QUARRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}
}

/// The Server section, checked.
#[derive(Debug, Clone)]
pub(super) struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
    pub metrics_listen: Option<SocketAddr>,
    /// `None`: no HTTP listener.
    pub http_listen: Option<SocketAddr>,
}

impl ServerArgs {
    /// File paths relative to the file's folder.
    pub(super) fn rebase(&mut self, rebase: impl Fn(PathBuf) -> PathBuf) {
        self.data_dir = self.data_dir.take().map(rebase);
    }

    pub(super) fn resolve(self) -> Result<Server, ConfigError> {
        let grace = self
            .shutdown_grace_secs
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS);
        if grace > 3600 {
            return Err(ConfigError::Invalid {
                setting: "--shutdown-grace-secs",
                reason: format!("is {grace}; the limit is 3600"),
            });
        }
        Ok(Server {
            listen: self
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            max_message_bytes: in_range(
                "--max-message-bytes",
                self.max_message_bytes,
                DEFAULT_MAX_MESSAGE_BYTES,
                MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES,
            )?,
            shutdown_grace: Duration::from_secs(grace),
            metrics_listen: self.metrics_listen,
            http_listen: match self.http_listen.as_deref().map(str::trim) {
                Some("none") => None,
                value => Some(value.unwrap_or(DEFAULT_HTTP_LISTEN).parse().map_err(|_| {
                    ConfigError::Invalid {
                        setting: "--http-listen",
                        reason: format!(
                            "is {:?}; give HOST:PORT (an IP address and a port) or none",
                            value.unwrap_or_default()
                        ),
                    }
                })?),
            },
        })
    }
}
