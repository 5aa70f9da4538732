//! The Storage section: which backend holds the data (the embedded data
//! directory, or a Qdrant cluster and how to reach it), index checkpoints
//! and rebuilds, and the disk reserve; checked into the engine's
//! [`IndexConfig`] and the root's [`Backend`].

use std::time::Duration;

use quarry_engine::IndexConfig;
use quarry_qdrant::QdrantConfig;
use serde::Deserialize;

use super::{in_range, section, ConfigError};

section! {
/// `quarry serve` settings: index checkpoints and rebuilds, and the disk reserve.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Storage and indexes")]
pub struct StorageArgs {
    /// Where collections, chunks, vectors and records live: `embedded`
    /// (this node's data directory: sled, HNSW and BM25 indexes) or
    /// `qdrant` (a Qdrant cluster, set by --qdrant-url; this node then
    /// keeps no state beyond its model cache). [default: embedded]
    #[arg(long, env = "QUARRY_BACKEND", value_parser = ["embedded", "qdrant"])]
    pub backend: Option<String>,

    /// gRPC URL of a Qdrant node, e.g. http://qdrant-0:6334; repeat the
    /// flag or separate with commas for several nodes of one cluster
    /// (requests go to the one that answered last and move on when it
    /// cannot be reached). Only with --backend qdrant.
    #[arg(long, env = "QUARRY_QDRANT_URL", value_delimiter = ',')]
    pub qdrant_url: Option<Vec<String>>,

    /// The Qdrant cluster's API key, if it has one. Never logged; prefer
    /// the environment variable to the flag (a flag shows in `ps`).
    #[arg(long, env = "QUARRY_QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,

    /// Seconds a Qdrant request may take before the node counts as
    /// unreachable (1-600). [default: 10]
    #[arg(long, env = "QUARRY_QDRANT_TIMEOUT_SECS")]
    pub qdrant_timeout_secs: Option<usize>,

    /// Seconds to wait for a connection to a Qdrant node (1-600).
    /// [default: 3]
    #[arg(long, env = "QUARRY_QDRANT_CONNECT_TIMEOUT_SECS")]
    pub qdrant_connect_timeout_secs: Option<usize>,

    /// Prefix of the Qdrant collections this deployment owns
    /// (PREFIX_c_NAME, PREFIX_records), so that several deployments can
    /// share a cluster: letters, digits, '_' and '-'. [default: quarry]
    #[arg(long, env = "QUARRY_QDRANT_PREFIX")]
    pub qdrant_prefix: Option<String>,

    /// Seconds between saves of changed HNSW graphs (1-86400). Changes in
    /// between are safe in the store's op log and replayed on start; a
    /// shorter interval means a shorter replay after a crash. [default: 60]
    #[arg(long, env = "QUARRY_INDEX_CHECKPOINT_SECS")]
    pub index_checkpoint_secs: Option<usize>,

    /// Rebuild a collection's HNSW graph (in the background) once deleted
    /// or replaced chunks pass this percentage of it (1-90). [default: 20]
    #[arg(long, env = "QUARRY_HNSW_REBUILD_PERCENT")]
    pub hnsw_rebuild_percent: Option<usize>,

    /// Free space (MiB) the data directory's disk must keep: document
    /// writes and new collections are refused (RESOURCE_EXHAUSTED) below
    /// it, while searches, Ask, ratings and deletes go on; writes resume
    /// once space is freed. 0 turns the check off. [default: 512]
    #[arg(long, env = "QUARRY_MIN_FREE_DISK_MB")]
    pub min_free_disk_mb: Option<usize>,

    /// The embedded store's page cache (MiB, 8-65536): recently read
    /// chunks, vectors and documents kept in memory. An index build from
    /// the store fills it to this cap and keeps it, so a small machine can
    /// set less (see docs/performance.md). [default: 256]
    #[arg(long, env = "QUARRY_STORE_CACHE_MIB")]
    pub store_cache_mib: Option<usize>,
}
}

/// Which storage backend a server opens.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// The data directory.
    #[default]
    Embedded,
    /// A Qdrant cluster.
    Qdrant(QdrantConfig),
}

/// The Storage section, checked.
#[derive(Debug, Clone)]
pub(super) struct Storage {
    pub backend: Backend,
    pub index: IndexConfig,
    pub min_free_disk_bytes: u64,
    pub store_cache_bytes: u64,
}

impl StorageArgs {
    pub(super) fn resolve(self) -> Result<Storage, ConfigError> {
        let defaults = IndexConfig::default();
        let index = IndexConfig {
            checkpoint_interval: Duration::from_secs(in_range(
                "--index-checkpoint-secs",
                self.index_checkpoint_secs,
                defaults.checkpoint_interval.as_secs() as usize,
                1..=86_400,
            )? as u64),
            rebuild_share: in_range(
                "--hnsw-rebuild-percent",
                self.hnsw_rebuild_percent,
                (defaults.rebuild_share * 100.0).round() as usize,
                1..=90,
            )? as f64
                / 100.0,
        };
        let min_free_disk_mb = in_range(
            "--min-free-disk-mb",
            self.min_free_disk_mb,
            (quarry_engine::DEFAULT_MIN_FREE_BYTES / (1024 * 1024)) as usize,
            0..=1024 * 1024,
        )?;
        let store_cache_mib = in_range(
            "--store-cache-mib",
            self.store_cache_mib,
            (quarry_store::DEFAULT_CACHE_BYTES >> 20) as usize,
            8..=65_536,
        )?;
        Ok(Storage {
            backend: backend(
                self.backend,
                self.qdrant_url,
                self.qdrant_api_key,
                self.qdrant_timeout_secs,
                self.qdrant_connect_timeout_secs,
                self.qdrant_prefix,
            )?,
            index,
            min_free_disk_bytes: min_free_disk_mb as u64 * 1024 * 1024,
            store_cache_bytes: (store_cache_mib as u64) << 20,
        })
    }
}

fn backend(
    name: Option<String>,
    urls: Option<Vec<String>>,
    api_key: Option<String>,
    timeout_secs: Option<usize>,
    connect_timeout_secs: Option<usize>,
    prefix: Option<String>,
) -> Result<Backend, ConfigError> {
    let urls: Vec<String> = urls
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    match name.as_deref().unwrap_or("embedded") {
        "embedded" => {
            if !urls.is_empty() || api_key.is_some() {
                return Err(ConfigError::Invalid {
                    setting: "--qdrant-url",
                    reason: "--qdrant-url and --qdrant-api-key need --backend qdrant".into(),
                });
            }
            Ok(Backend::Embedded)
        }
        "qdrant" => {
            if urls.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "--qdrant-url",
                    reason: "--backend qdrant needs --qdrant-url http://HOST:6334 (one or more)"
                        .into(),
                });
            }
            for u in &urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        setting: "--qdrant-url",
                        reason: format!(
                            "{u:?} must start with http:// or https:// (Qdrant's gRPC port, 6334 by default)"
                        ),
                    });
                }
            }
            let defaults = QdrantConfig::new(Vec::new());
            let secs = |flag: &'static str, v: Option<usize>, d: Duration| {
                in_range(flag, v, d.as_secs() as usize, 1..=600)
                    .map(|s| Duration::from_secs(s as u64))
            };
            let prefix = prefix.unwrap_or(defaults.prefix.clone());
            if prefix.is_empty()
                || prefix.len() > 32
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::Invalid {
                    setting: "--qdrant-prefix",
                    reason: format!("{prefix:?} must be 1 to 32 letters, digits, '_' or '-'"),
                });
            }
            Ok(Backend::Qdrant(QdrantConfig {
                urls,
                api_key: api_key.filter(|k| !k.is_empty()),
                timeout: secs("--qdrant-timeout-secs", timeout_secs, defaults.timeout)?,
                connect_timeout: secs(
                    "--qdrant-connect-timeout-secs",
                    connect_timeout_secs,
                    defaults.connect_timeout,
                )?,
                prefix,
            }))
        }
        other => Err(ConfigError::Invalid {
            setting: "--backend",
            reason: format!("{other:?}: choose embedded or qdrant"),
        }),
    }
}
