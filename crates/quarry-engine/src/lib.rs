//! The pipeline that the server and the command line drive: it owns the
//! store (and, as they land, the embedder, the indexes and the generator)
//! and exposes each capability as one async call.
//!
//! Blocking work (sled I/O with its fsyncs, and later model and index work)
//! never runs on the async runtime's workers: every call hops to the blocking
//! pool or to a model thread.

mod collections;
mod error;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_store::Store;

pub use collections::{CreateCollection, DeletedCollection};
pub use error::EngineError;

/// Result type of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Where the engine keeps its data.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data directory: the store lives in `DIR/store`, indexes beside it.
    pub data_dir: PathBuf,
}

/// The engine. Clone it freely: clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    data_dir: PathBuf,
}

impl Engine {
    /// Opens the data directory, creating it when missing. Blocking: call it
    /// before starting to serve, or from a blocking context.
    pub fn open(config: EngineConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            EngineError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let store = Store::open(config.data_dir.join("store"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                data_dir: config.data_dir,
            }),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Writes everything to disk; called on shutdown.
    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.store.flush()?)
    }

    /// Runs `f` against the store on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner.store))
            .await
            .map_err(|e| EngineError::Internal(format!("blocking task failed: {e}")))?
    }
}
