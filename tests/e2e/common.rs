//! Test harness: starts the real `quarry` binary on an ephemeral loopback
//! port with its own data directory, and stops it the way operators do.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use quarry::serve_process::{Logs, ServeOptions, ServeProcess};
use tonic::transport::Channel;

/// How long a server gets to start or stop before the test fails.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// The path of the binary under test.
pub fn quarry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_quarry")
}

/// Makes sure the default models are in the cache before any server
/// starts (fetching them on a fresh machine), once per test binary.
pub fn ensure_models() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let source: quarry_models::ModelSource =
            quarry_models::DEFAULT_EMBED_MODEL.parse().unwrap();
        let cache = quarry_models::ModelCache::from_env();
        cache
            .fetch(&source, &quarry_embed::MODEL_FILES)
            .unwrap_or_else(|e| panic!("{e}"));
        let generator: quarry_models::ModelSource =
            quarry_models::DEFAULT_GENERATE_MODEL.parse().unwrap();
        quarry_generate::fetch_generator(&cache, &generator).unwrap_or_else(|e| panic!("{e}"));
    });
}

/// A running `quarry serve` ([`quarry::serve_process::ServeProcess`], the
/// harness the benchmarks use too) with its logs captured.
pub struct TestServer {
    process: Option<ServeProcess>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The metrics address, when the server was given --metrics-listen.
    pub metrics_addr: Option<String>,
    /// `http://127.0.0.1:PORT` of the HTTP API (unless --http-listen none).
    pub http_addr: Option<String>,
    /// Captured standard error (logs), filled as the server writes it.
    stderr: mpsc::Receiver<String>,
    stderr_lines: Vec<String>,
}

impl TestServer {
    /// Starts a server on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server with extra flags; without --keys-file among them,
    /// auth is off (--no-auth).
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_logging(data_dir, extra, "info")
    }

    /// Starts a server on `backend` (its data directory `data_dir` holds
    /// the data on the embedded backend, nothing on Qdrant's), with extra
    /// flags as [`Self::start_with`].
    pub fn on(backend: &Backend, data_dir: &Path, extra: &[&str]) -> Self {
        let args = backend.args();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Self::start_logging(data_dir, &all, "info")
    }

    /// Like [`Self::start_with`], with `rust_log` as the server's RUST_LOG.
    pub fn start_logging(data_dir: &Path, extra: &[&str], rust_log: &str) -> Self {
        ensure_models();
        let mut args: Vec<&str> = Vec::new();
        if !extra.contains(&"--keys-file") {
            args.push("--no-auth");
        }
        args.extend_from_slice(extra);
        let options = ServeOptions {
            bin: Path::new(quarry_bin()),
            data_dir,
            args: &args,
            rust_log,
            startup_limit: STARTUP_LIMIT,
        };
        let mut process =
            ServeProcess::start(&options, Logs::Lines).unwrap_or_else(|e| panic!("{e}"));
        let stderr = process.take_log_lines().expect("logs captured as lines");
        Self {
            addr: process.addr().to_owned(),
            metrics_addr: process.metrics_addr().map(str::to_owned),
            http_addr: process.http_addr().map(str::to_owned),
            process: Some(process),
            stderr,
            stderr_lines: Vec::new(),
        }
    }

    /// A connected channel.
    pub async fn channel(&self) -> Channel {
        self.process
            .as_ref()
            .unwrap()
            .channel()
            .await
            .expect("connect to the test server")
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn stop(self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) without waiting.
    pub fn signal(&self, signal: libc::c_int) {
        self.process.as_ref().unwrap().signal(signal).unwrap();
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(mut self) -> ExitStatus {
        let status = self.wait_process();
        self.stderr_lines.extend(self.stderr.try_iter());
        status
    }

    fn wait_process(&mut self) -> ExitStatus {
        let process = self.process.take().unwrap();
        process.wait(STOP_LIMIT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits (at most `limit`) for a log line containing `needle` that
    /// arrives after the last one read, and returns it.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self
                .stderr
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.stderr_lines.push(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The number of log lines read so far (an index into [`Self::logs`]'
    /// lines).
    pub fn log_len(&self) -> usize {
        self.stderr_lines.len()
    }

    /// Log lines from index `from` on, after reading everything pending.
    pub fn log_lines_from(&mut self, from: usize) -> Vec<String> {
        self.stderr_lines.extend(self.stderr.try_iter());
        self.stderr_lines[from.min(self.stderr_lines.len())..].to_vec()
    }

    /// Waits (bounded) for the process to exit and returns every line it
    /// logged, up to the pipe's end.
    pub fn wait_exit_with_logs(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.wait_process();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => self.stderr_lines.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        (status, std::mem::take(&mut self.stderr_lines))
    }

    /// Everything the server logged so far.
    pub fn logs(&mut self) -> String {
        self.stderr_lines.extend(self.stderr.try_iter());
        self.stderr_lines.join("\n")
    }
}

/// Waits for `child` to exit, killing it and failing after `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a collection with default settings (panics on failure).
pub async fn create_collection(channel: &Channel, name: &str) {
    quarry::proto::collections_client::CollectionsClient::new(channel.clone())
        .create_collection(quarry::proto::CreateCollectionRequest {
            name: name.into(),
            settings: None,
            placement: None,
        })
        .await
        .unwrap_or_else(|s| panic!("create collection {name}: {s}"));
}

/// A collection as GetCollection reports it (panics on failure).
pub async fn collection(channel: &Channel, name: &str) -> quarry::proto::Collection {
    quarry::proto::collections_client::CollectionsClient::new(channel.clone())
        .get_collection(quarry::proto::GetCollectionRequest { name: name.into() })
        .await
        .unwrap_or_else(|s| panic!("get collection {name}: {s}"))
        .into_inner()
}

/// Asserts that sled, HNSW and tantivy hold the same number of the
/// collection's chunks; returns the collection.
pub async fn assert_index_counts_agree(channel: &Channel, name: &str) -> quarry::proto::Collection {
    let c = collection(channel, name).await;
    assert_eq!(
        c.dense_indexed_chunks, c.chunk_count,
        "chunks in HNSW: {c:?}"
    );
    assert_eq!(
        c.keyword_indexed_chunks, c.chunk_count,
        "chunks in tantivy: {c:?}"
    );
    c
}

/// A fresh temporary data directory.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("quarry-test-")
        .tempdir()
        .unwrap()
}

/// The path of a temp dir as an owned path.
pub fn path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

/// Adds a key with `role` to the keys file (`quarry keys create`) and
/// returns it.
pub fn create_key(file: &std::path::Path, name: &str, role: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(quarry_bin())
        .args(["keys", "create", name, "--role", role, "--keys-file"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The Python packages the end-to-end tests drive the server with, pinned.
pub const PYTHON_TOOLS: &[&str] = &["openapi-spec-validator==0.9.0", "openai==3.57.0"];

/// A Python virtual environment with [`PYTHON_TOOLS`], at
/// `$QUARRY_TEST_VENV` or `$HOME/.cache/quarry/testvenv`: `.ci/run` makes
/// it; a test makes it when it is missing (pip from PyPI), once per run.
pub fn python_venv() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = std::env::var_os("QUARRY_TEST_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    let home = std::env::var_os("HOME")
                        .map_or_else(|| PathBuf::from("/root"), PathBuf::from);
                    home.join(".cache/quarry/testvenv")
                });
            let python = dir.join("bin/python");
            let ready = std::process::Command::new(&python)
                .args(["-c", "import openapi_spec_validator, openai"])
                .status()
                .is_ok_and(|s| s.success());
            if !ready {
                let made = std::process::Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&dir)
                    .status()
                    .unwrap();
                assert!(made.success(), "python3 -m venv {} failed", dir.display());
                let installed = std::process::Command::new(dir.join("bin/pip"))
                    .args(["install", "--quiet"])
                    .args(PYTHON_TOOLS)
                    .status()
                    .unwrap();
                assert!(installed.success(), "pip install {PYTHON_TOOLS:?} failed");
            }
            dir
        })
        .clone()
}

/// Where a test server keeps its data: the tests of retrieval, Ask,
/// history and hostile input run on both (see [`both_backends`]).
#[derive(Debug, Clone)]
pub enum Backend {
    /// The server's data directory.
    Embedded,
    /// A Qdrant node shared by the test binary, under a prefix of the
    /// test's own (so tests never see each other's collections).
    Qdrant {
        /// The node's gRPC URL.
        url: String,
        /// This test's collection prefix.
        prefix: String,
    },
}

impl Backend {
    /// The Qdrant backend for one test; `None` (with a NOT RUN line)
    /// outside CI when there is no Qdrant binary, a panic in CI.
    pub fn qdrant(test: &str) -> Option<Self> {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let url = shared_qdrant(test)?;
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Self::Qdrant {
            url,
            prefix: format!("t{}_{n}", std::process::id()),
        })
    }

    /// The flags that select it.
    pub fn args(&self) -> Vec<String> {
        match self {
            Self::Embedded => Vec::new(),
            Self::Qdrant { url, prefix } => vec![
                "--backend".into(),
                "qdrant".into(),
                "--qdrant-url".into(),
                url.clone(),
                "--qdrant-prefix".into(),
                prefix.clone(),
            ],
        }
    }

    /// Whether this is the embedded backend.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Self::Embedded)
    }
}

/// One Qdrant node for the whole test binary, started on first use by a
/// thread that lives as long as the process (the node is the thread's
/// child, and dies with the process: PR_SET_PDEATHSIG).
fn shared_qdrant(test: &str) -> Option<String> {
    static NODE: OnceLock<String> = OnceLock::new();
    let bin = crate::qdrant::qdrant_or_skip(test)?;
    Some(
        NODE.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("qdrant-keeper".into())
                .spawn(move || {
                    let root = std::env::temp_dir()
                        .join(format!("quarry-e2e-qdrant-{}", std::process::id()));
                    remove_stale_qdrant_dirs();
                    let cluster = quarry::qdrant_process::QdrantCluster::start(
                        &bin,
                        &root,
                        1,
                        Duration::from_secs(60),
                    );
                    match cluster {
                        Ok(cluster) => {
                            tx.send(Ok(cluster.grpc_url(0))).unwrap();
                            // Holds the node until the process exits.
                            loop {
                                std::thread::park();
                                let _ = &cluster;
                            }
                        }
                        Err(e) => tx.send(Err(e.to_string())).unwrap(),
                    }
                })
                .unwrap();
            rx.recv()
                .unwrap()
                .unwrap_or_else(|e| panic!("cannot start the shared Qdrant node: {e}"))
        })
        .clone(),
    )
}

/// Storage of shared nodes of test binaries that are gone.
fn remove_stale_qdrant_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("quarry-e2e-qdrant-") else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Declares an async end-to-end test run on both storage backends: a
/// module `NAME` with tests `embedded` and `qdrant`, each calling the body
/// with `backend` bound to its [`Backend`].
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($backend: $crate::common::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                case($crate::common::Backend::Embedded).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn qdrant() {
                if let Some(b) = $crate::common::Backend::qdrant(concat!(
                    module_path!(),
                    "::qdrant"
                )) {
                    case(b).await
                }
            }
        }
    };
}
pub(crate) use both_backends;
