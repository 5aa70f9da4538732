//! Real Qdrant processes on loopback for tests and benchmarks: one node or
//! a cluster (each node with its own HTTP, gRPC and peer-to-peer ports and
//! storage; the first started with `--uri`, the others joining it with
//! `--bootstrap`), waited for until every peer has joined and a leader is
//! elected. Nodes can be SIGKILLed and restarted on their storage; every
//! process is killed when the cluster is dropped.
//!
//! The binary is `$QUARRY_QDRANT_BIN`, else `$HOME/.cache/quarry/qdrant/qdrant`
//! (`.ci/run` unpacks it there from `../shared/vendor/qdrant`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a cluster could not be started or did not settle.
#[derive(Debug, thiserror::Error)]
pub enum QdrantError {
    /// Spawning or signalling failed.
    #[error("qdrant: {0}")]
    Io(#[from] std::io::Error),
    /// It did not settle in time.
    #[error("qdrant: {0}")]
    Timeout(String),
}

/// The Qdrant binary, if there is one.
pub fn qdrant_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("QUARRY_QDRANT_BIN").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/quarry/qdrant/qdrant")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// One node's ports and storage.
#[derive(Debug, Clone)]
struct Node {
    http: u16,
    grpc: u16,
    p2p: u16,
    dir: PathBuf,
}

/// A running Qdrant cluster (or single node).
pub struct QdrantCluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    children: Vec<Option<Child>>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `GET url` as JSON, or `None` while the node does not answer.
fn get_json(url: &str) -> Option<serde_json::Value> {
    ureq::get(url)
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_json()
        .ok()
}

impl QdrantCluster {
    /// Starts `nodes` nodes under `root` (one is a plain single node; more
    /// form a cluster) and waits, at most `limit`, until all have joined.
    pub fn start(
        bin: &Path,
        root: &Path,
        nodes: usize,
        limit: Duration,
    ) -> Result<Self, QdrantError> {
        let mut cluster = Self {
            bin: bin.to_path_buf(),
            nodes: Vec::new(),
            children: Vec::new(),
        };
        for i in 0..nodes.max(1) {
            cluster.nodes.push(Node {
                http: free_port()?,
                grpc: free_port()?,
                p2p: free_port()?,
                dir: root.join(format!("qdrant-{}", i + 1)),
            });
        }
        let clustered = cluster.nodes.len() > 1;
        for i in 0..cluster.nodes.len() {
            let bootstrap = (clustered && i > 0).then(|| cluster.nodes[0].p2p);
            let child = cluster.spawn(i, clustered, bootstrap)?;
            cluster.children.push(Some(child));
            if i == 0 {
                cluster.wait_ready(0, limit)?;
            }
        }
        if clustered {
            cluster.wait_peers(limit)?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_ready(i, limit)?;
        }
        Ok(cluster)
    }

    fn spawn(
        &self,
        i: usize,
        clustered: bool,
        bootstrap: Option<u16>,
    ) -> Result<Child, QdrantError> {
        let n = &self.nodes[i];
        std::fs::create_dir_all(&n.dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("qdrant.log"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(&n.dir)
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", n.http.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", n.grpc.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", n.dir.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", n.dir.join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if clustered {
            cmd.env("QDRANT__CLUSTER__ENABLED", "true")
                .env("QDRANT__CLUSTER__P2P__PORT", n.p2p.to_string())
                .arg("--uri")
                .arg(format!("http://127.0.0.1:{}", n.p2p));
            if let Some(port) = bootstrap {
                cmd.arg("--bootstrap")
                    .arg(format!("http://127.0.0.1:{port}"));
            }
        }
        // A node must not outlive the process that started it (a test
        // binary that exits, or is killed, mid-run).
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        Ok(cmd.spawn()?)
    }

    /// Waits until node `i` answers `/readyz` with 200.
    pub fn wait_ready(&self, i: usize, limit: Duration) -> Result<(), QdrantError> {
        let url = format!("{}/readyz", self.http_url(i));
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ureq::get(&url)
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(QdrantError::Timeout(format!(
            "node {} was not ready within {limit:?} (log: {})",
            i + 1,
            self.nodes[i].dir.join("qdrant.log").display()
        )))
    }

    /// Waits until every running node sees all peers and a leader.
    pub fn wait_peers(&self, limit: Duration) -> Result<(), QdrantError> {
        let deadline = Instant::now() + limit;
        let want = self.nodes.len();
        while Instant::now() < deadline {
            let settled = (0..want).filter(|&i| self.children[i].is_some()).all(|i| {
                self.peers(i)
                    .is_some_and(|(peers, leader)| peers == want && leader)
            });
            if settled {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(QdrantError::Timeout(format!(
            "the {want} peers did not join within {limit:?}"
        )))
    }

    /// Node `i`'s view of the cluster: how many peers, and whether it
    /// knows a leader.
    pub fn peers(&self, i: usize) -> Option<(usize, bool)> {
        let v = get_json(&format!("{}/cluster", self.http_url(i)))?;
        let result = &v["result"];
        let peers = result["peers"].as_object()?.len();
        let leader = !result["raft_info"]["leader"].is_null();
        Some((peers, leader))
    }

    /// `http://127.0.0.1:PORT` of node `i`'s gRPC API (what Quarry uses).
    pub fn grpc_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].grpc)
    }

    /// Every node's gRPC address.
    pub fn grpc_urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.grpc_url(i)).collect()
    }

    /// `http://127.0.0.1:PORT` of node `i`'s REST API.
    pub fn http_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].http)
    }

    /// The process ids of the running nodes (to measure their memory).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(|c| c.id()).collect()
    }

    /// SIGKILLs node `i` (its storage stays).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its storage (it rejoins by its `--uri`).
    pub fn restart(&mut self, i: usize, limit: Duration) -> Result<(), QdrantError> {
        self.kill(i);
        let clustered = self.nodes.len() > 1;
        let child = self.spawn(i, clustered, None)?;
        self.children[i] = Some(child);
        self.wait_ready(i, limit)
    }

    /// SIGTERM to every node, then waits (bounded) for them to exit.
    pub fn stop(mut self) {
        for child in self.children.iter().flatten() {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for slot in &mut self.children {
            if let Some(child) = slot.as_mut() {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Drop for QdrantCluster {
    fn drop(&mut self) {
        for slot in &mut self.children {
            if let Some(mut child) = slot.take() {
                if let Ok(None) = child.try_wait() {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
    }
}
