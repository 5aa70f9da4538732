//! The Storage section: index checkpoints and rebuilds, and the disk
//! reserve; checked into the engine's [`IndexConfig`].

use std::time::Duration;

use quarry_engine::IndexConfig;
use serde::Deserialize;

use super::{in_range, section, ConfigError};

section! {
/// `quarry serve` settings: index checkpoints and rebuilds, and the disk reserve.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Storage and indexes")]
pub struct StorageArgs {
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
}
}

/// The Storage section, checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Storage {
    pub index: IndexConfig,
    pub min_free_disk_bytes: u64,
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
        Ok(Storage {
            index,
            min_free_disk_bytes: min_free_disk_mb as u64 * 1024 * 1024,
        })
    }
}
