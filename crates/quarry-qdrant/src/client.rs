//! The connection to the cluster: one `qdrant-client` per configured node
//! URL, a small I/O runtime of the backend's own, and [`Nodes::call`],
//! which runs a request on the node that answered last and moves on to
//! the next one when a node cannot be reached.
//!
//! Why failover is safe: every write the backend sends is idempotent
//! (points have ids derived from what they hold, deletes select by id or
//! filter, records carry their id), so a request that timed out on one
//! node may be sent again to another.
//!
//! The storage traits are blocking and the engine calls them on its
//! blocking pool; [`Nodes::block_on`] drives a request to completion from
//! such a thread, with the backend's runtime doing the I/O. The runtime is
//! the backend's own so that the same code serves `quarry serve` and the
//! synchronous `quarry migrate`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qdrant_client::qdrant::{WriteOrdering, WriteOrderingType};
use qdrant_client::{Qdrant, QdrantError};

use crate::error::{tonic_code::Code, QdrantBackendError};

/// How to reach the cluster.
#[derive(Clone)]
pub struct QdrantConfig {
    /// gRPC URLs of one or more nodes (`http://host:6334`).
    pub urls: Vec<String>,
    /// The cluster's API key, if it has one. Never logged.
    pub api_key: Option<String>,
    /// Longest wait for one request.
    pub timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Prefix of the Qdrant collections this deployment owns, so that
    /// several deployments can share a cluster.
    pub prefix: String,
}

impl std::fmt::Debug for QdrantConfig {
    /// Everything but the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantConfig")
            .field("urls", &self.urls)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl QdrantConfig {
    /// The defaults for `urls`: 10 s per request, 3 s to connect, prefix
    /// `quarry`.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            api_key: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            prefix: "quarry".into(),
        }
    }
}

/// The cluster's nodes, as clients.
pub struct Nodes {
    clients: Vec<(String, Qdrant)>,
    /// The node that answered last.
    current: AtomicUsize,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context
        // (the server drops the engine there).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether an error means "this node cannot serve now" (try another)
/// rather than an answer.
fn unreachable(e: &QdrantError) -> bool {
    match e {
        QdrantError::ResponseError { status } => match status.code() as i32 {
            // CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, UNAVAILABLE
            1 | 2 | 4 | 14 => true,
            // INTERNAL: the client reports a failed connection this way.
            13 => status.message().starts_with("Failed to connect"),
            _ => false,
        },
        QdrantError::Io(_) => true,
        _ => false,
    }
}

fn ordering(kind: WriteOrderingType) -> WriteOrdering {
    WriteOrdering {
        r#type: kind as i32,
    }
}

/// The backend error for an answer that is not a success.
pub(crate) fn refused(what: &str, e: QdrantError) -> QdrantBackendError {
    match e {
        QdrantError::ResponseError { status } => QdrantBackendError::Refused {
            what: what.to_owned(),
            code: match status.code() as i32 {
                5 => Code::NotFound,
                6 => Code::AlreadyExists,
                8 => Code::ResourceExhausted,
                3 => Code::InvalidArgument,
                1 | 4 | 14 => Code::Unavailable,
                _ => Code::Other,
            },
            message: status.message().to_owned(),
        },
        QdrantError::ResourceExhaustedError { status, .. } => QdrantBackendError::Refused {
            what: what.to_owned(),
            code: Code::ResourceExhausted,
            message: status.message().to_owned(),
        },
        other => QdrantBackendError::Refused {
            what: what.to_owned(),
            code: Code::Other,
            message: other.to_string(),
        },
    }
}

impl Nodes {
    /// Clients for every URL (no request is sent yet: a cluster that is
    /// down at start is reported by the first call and by health checks,
    /// and reconnected to when it is back).
    pub fn connect(config: &QdrantConfig) -> Result<Self, QdrantBackendError> {
        if config.urls.is_empty() {
            return Err(QdrantBackendError::Config(
                "no Qdrant URL: set --qdrant-url http://HOST:6334 (one or more)".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-io")
            .enable_all()
            .build()
            .map_err(|e| {
                QdrantBackendError::Config(format!("cannot start the I/O runtime: {e}"))
            })?;
        let handle = runtime.handle().clone();
        let mut clients = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let mut builder = Qdrant::from_url(url)
                .timeout(config.timeout)
                .connect_timeout(config.connect_timeout)
                .keep_alive_while_idle()
                // The server's version is checked by health(); the client's
                // own check prints to stdout and needs a reachable node.
                .skip_compatibility_check();
            if let Some(key) = &config.api_key {
                builder = builder.api_key(key.clone());
            }
            let client = {
                let _guard = handle.enter();
                builder.build().map_err(|e| {
                    QdrantBackendError::Config(format!("bad Qdrant URL {url:?}: {e}"))
                })?
            };
            clients.push((url.clone(), client));
        }
        Ok(Self {
            clients,
            current: AtomicUsize::new(0),
            runtime: Some(runtime),
            handle,
        })
    }

    /// The configured URLs.
    pub fn urls(&self) -> Vec<&str> {
        self.clients.iter().map(|(u, _)| u.as_str()).collect()
    }

    /// Runs `fut` to completion from a blocking thread.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.handle.block_on(fut)
    }

    /// Runs `fut` on the backend's runtime (for requests sent together).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Sends a request (built afresh for each try by `f`) to the node that
    /// answered last, then to each other node while they cannot be
    /// reached. `what` names the request in errors.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, QdrantBackendError>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        let n = self.clients.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut tried = Vec::new();
        let mut last = None;
        for step in 0..n {
            let i = (first + step) % n;
            let (url, client) = &self.clients[i];
            match f(client.clone()).await {
                Ok(v) => {
                    if step > 0 {
                        tracing::info!(node = %url, "Qdrant: switched to this node");
                    }
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) if unreachable(&e) => {
                    tracing::warn!(node = %url, error = %e, "Qdrant node unreachable; trying the next");
                    tried.push(url.clone());
                    last = Some(e);
                }
                Err(e) => return Err(refused(what, e)),
            }
        }
        Err(QdrantBackendError::Unreachable {
            tried: tried.join(", "),
            source: last.expect("at least one node was tried"),
        })
    }

    /// A write, from a blocking thread: sent with strong ordering (through
    /// the shard's permanent leader replica, so that every replica applies
    /// writes in one order), and, when that leader is the replica that is
    /// down, sent again with medium ordering (through the highest replica
    /// that is alive), so that writes go on while a node is down. `f`
    /// builds the request for an ordering. The retry is safe: every write
    /// of the backend is idempotent.
    pub fn write<T, F, Fut>(&self, what: &str, f: F) -> Result<T, QdrantBackendError>
    where
        F: Fn(Qdrant, WriteOrdering) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        match self.run(what, |c| f(c, ordering(WriteOrderingType::Strong))) {
            Err(QdrantBackendError::Refused { message, .. })
                if message.contains("ordering via leader peer")
                    || message.contains("no leader could be selected") =>
            {
                tracing::warn!(
                    %message,
                    "Qdrant: the shard's leader replica is down; writing through the highest live replica (medium ordering)"
                );
                self.run(what, |c| f(c, ordering(WriteOrderingType::Medium)))
            }
            other => other,
        }
    }

    /// [`Nodes::call`] from a blocking thread.
    pub fn run<T, F, Fut>(&self, what: &str, f: F) -> Result<T, QdrantBackendError>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        self.block_on(self.call(what, f))
    }
}

/// Shared handle on the nodes.
pub type SharedNodes = Arc<Nodes>;
