//! The data directory's disk as a resource: writes are refused while free
//! space is under a reserve, and after a write has failed on the disk.
//!
//! sled, tantivy and the HNSW checkpoints all need room to write, and none
//! of them recovers in place from a full or read-only disk: sled keeps the
//! first I/O error and returns it to every later write until it is opened
//! again. So document writes stop *before* the disk is full, with
//! RESOURCE_EXHAUSTED saying how much is free, while searches and Ask go on
//! and writes resume by themselves once space is freed. The reserve also
//! leaves room for the small writes that stay allowed (records of Ask,
//! ratings, deletes) and for index checkpoints.
//!
//! If a write fails on the disk anyway (the reserve was too small, the
//! directory became read-only), the store is latched read-only: later
//! writes are refused with UNAVAILABLE naming the first failure, since
//! sled would refuse them anyway, until a restart reopens it. Nothing
//! acknowledged is lost: acknowledgement follows a successful flush.

use std::path::PathBuf;
use std::sync::Mutex;

use quarry_store::StoreError;

use crate::{EngineError, Result};

/// The reserve when none is configured.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 512 * 1024 * 1024;

pub(crate) struct DiskGuard {
    dir: PathBuf,
    min_free_bytes: u64,
    /// The first write that failed on the disk, once one has.
    failed: Mutex<Option<String>>,
}

const MIB: u64 = 1024 * 1024;

impl DiskGuard {
    pub(crate) fn new(dir: PathBuf, min_free_bytes: u64) -> Self {
        Self {
            dir,
            min_free_bytes,
            failed: Mutex::new(None),
        }
    }

    /// Refuses a write after a disk failure (UNAVAILABLE).
    pub(crate) fn check_not_failed(&self) -> Result<()> {
        let failed = self.failed.lock().map_or_else(
            |_| Some("a thread panicked while recording a failure".to_owned()),
            |f| f.clone(),
        );
        match failed {
            Some(reason) => Err(EngineError::Unavailable(format!(
                "the data directory refuses writes since one failed ({reason}); searches and \
                 Ask still work; restart quarry once the disk is writable again (everything \
                 acknowledged is on disk)"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses a write that could fill the disk: after a disk failure, or
    /// while free space is under the reserve (RESOURCE_EXHAUSTED).
    pub(crate) fn check_room(&self) -> Result<()> {
        self.check_not_failed()?;
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let free = match fs4::available_space(&self.dir) {
            Ok(free) => free,
            // Not knowing is no reason to refuse; the write itself will tell.
            Err(e) => {
                tracing::debug!(dir = %self.dir.display(), error = %e, "cannot read free space");
                return Ok(());
            }
        };
        if free < self.min_free_bytes {
            return Err(EngineError::ResourceExhausted(format!(
                "the disk of the data directory {} has {} MiB free, under the reserve of {} MiB \
                 (--min-free-disk-mb); free space or lower the reserve, and writes resume; \
                 searches and Ask still work",
                self.dir.display(),
                free / MIB,
                self.min_free_bytes.div_ceil(MIB),
            )));
        }
        Ok(())
    }

    /// Passes a store write's result through, latching the store read-only
    /// when it failed on the disk.
    pub(crate) fn watch<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            if e.is_io() {
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                if failed.is_none() {
                    tracing::error!(
                        error = %e,
                        "a write to the data directory failed: writes are refused until restart"
                    );
                    *failed = Some(e.to_string());
                }
            }
        }
        result
    }

    /// Latches writes off after an index failed to take a write the store
    /// already holds (its in-memory state is now behind the store; a
    /// restart replays the store's op log into it). The caller's error:
    /// RESOURCE_EXHAUSTED when the disk is full (tantivy reports that only
    /// as a dead writer), UNAVAILABLE otherwise.
    pub(crate) fn index_write_failed(&self, e: quarry_index::IndexError) -> EngineError {
        let full = fs4::available_space(&self.dir).is_ok_and(|free| free < MIB);
        let reason = if full {
            format!("the data directory's disk is full: index: {e}")
        } else {
            format!("index: {e}")
        };
        {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.is_none() {
                tracing::error!(
                    error = %e,
                    disk_full = full,
                    "an index write failed: writes are refused until restart"
                );
                *failed = Some(reason.clone());
            }
        }
        if full {
            EngineError::ResourceExhausted(reason)
        } else {
            EngineError::Unavailable(format!(
                "{reason}; the write is in the store and the indexes catch up on restart"
            ))
        }
    }

    /// Whether writes are latched off.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.lock().map_or(true, |f| f.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_zero_disables() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path().to_path_buf(), u64::MAX);
        match guard.check_room() {
            Err(EngineError::ResourceExhausted(m)) => {
                assert!(m.contains("--min-free-disk-mb"), "{m}");
                assert!(m.contains(&dir.path().display().to_string()), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(DiskGuard::new(dir.path().to_path_buf(), 0)
            .check_room()
            .is_ok());
    }

    #[test]
    fn a_failed_write_latches_writes_off() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path().to_path_buf(), 0);
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let result: Result<(), StoreError> = Err(StoreError::Sled(sled::Error::Io(full)));
        assert!(guard.watch(result).is_err());
        assert!(guard.has_failed());
        match guard.check_room() {
            Err(EngineError::Unavailable(m)) => assert!(m.contains("No space left"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Errors that are not the disk's do not latch.
        let guard = DiskGuard::new(dir.path().to_path_buf(), 0);
        let result: Result<(), StoreError> = Err(StoreError::RecordNotFound("x".into()));
        assert!(guard.watch(result).is_err());
        assert!(guard.check_room().is_ok());
    }
}
