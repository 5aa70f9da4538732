//! The pipeline that the server and the command line drive: it owns the
//! storage (behind [`storage::Storage`]; sled + HNSW + tantivy by
//! default), the embedder and the generator, and exposes each capability
//! as one async call.
//!
//! Blocking work never runs on the async runtime's workers: sled I/O with
//! its fsyncs hops to the blocking pool, and model work goes to the model
//! threads behind their bounded queues.

mod answer;
mod ask;
mod bulk;
pub mod chunk;
mod collections;
pub mod context;
mod documents;
mod embed;
mod error;
pub mod grounding;
mod history;
mod huge_pages;
mod prompt;
pub mod redact;
pub mod rescore;
mod search;
pub mod storage;
#[cfg(test)]
mod tests;
mod validate;
mod word_vectors;

use std::path::PathBuf;
use std::sync::Arc;

use quarry_embed::{EmbedQueue, QueueConfig};
use quarry_generate::GenerateQueue;
use quarry_models::{ModelCache, ModelSource};
use storage::local::LocalStorage;
use storage::Storage;

pub use ask::{
    AskConfig, AskDone, AskEvent, AskFinish, AskRequest, Citation, Delta, GenerationOptions,
    NOT_FOUND_ANSWER, SYSTEM_PROMPT,
};
pub use bulk::{BulkBatch, BulkError, BulkSummary};
pub use chunk::chunk_text;
pub use collections::{CreateCollection, DeletedCollection};
pub use documents::{
    content_hash, validate_document, DeleteSelector, DeleteSummary, DocumentLimits, UpsertSummary,
};
pub use embed::{EmbedLimits, Embeddings};
pub use error::{EngineError, ErrorKind};
pub use grounding::{EvidenceLayout, GroundingConfig, GROUNDED_EXAMPLE, GROUNDED_SYSTEM_PROMPT};
pub use history::{
    page_token, parse_page_token, RecordFilter, RecordPage, RecordSelector, DEFAULT_PAGE_SIZE,
    MAX_COMMENT_BYTES, MAX_PAGE_SIZE,
};
pub use quarry_core::StoredDocument;
pub use quarry_core::{AnswerMode, SentenceCheck, SentenceStatus};
pub use quarry_ground::VerifyConfig;
pub use quarry_index::{Fusion, Mode, DEFAULT_CONVEX_ALPHA, DEFAULT_RRF_K};
pub use search::{SearchHit, SearchLimits, SearchRequest};
pub use storage::local::disk::DEFAULT_MIN_FREE_BYTES;
pub use storage::local::IndexConfig;

/// Result type of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data directory: the store lives in `DIR/store`, indexes beside it.
    pub data_dir: PathBuf,
    /// Where models are cached.
    pub model_cache: ModelCache,
    /// The sentence embedder's source.
    pub embed_model: ModelSource,
    /// The embedder's threads and queue.
    pub embed_queue: QueueConfig,
    /// Limits on Embed requests.
    pub embed_limits: EmbedLimits,
    /// Limits on documents.
    pub document_limits: DocumentLimits,
    /// Limits on searches.
    pub search_limits: SearchLimits,
    /// Index checkpoints and graph rebuilds.
    pub index: IndexConfig,
    /// The generation model's source; `None` serves no Ask.
    pub generate_model: Option<ModelSource>,
    /// The generation thread's queue, batch and cache budget.
    pub generate: quarry_generate::GenerateConfig,
    /// Limits and defaults of Ask.
    pub ask: AskConfig,
    /// Seals prompt/response records at rest, when set.
    pub record_key: Option<quarry_store::RecordKey>,
    /// Document writes are refused while the data directory's disk has
    /// less free space than this (0: never).
    pub min_free_disk_bytes: u64,
    /// The store's page cache (sled's count of the bytes it keeps).
    pub store_cache_bytes: u64,
}

impl EngineConfig {
    /// Default settings and no generation model: for tools that load and
    /// search a corpus (evaluation, benchmarks).
    pub fn retrieval_only(
        data_dir: PathBuf,
        model_cache: ModelCache,
        embed_model: ModelSource,
    ) -> Self {
        Self {
            data_dir,
            model_cache,
            embed_model,
            embed_queue: QueueConfig::default(),
            embed_limits: EmbedLimits::default(),
            document_limits: DocumentLimits::default(),
            search_limits: SearchLimits::default(),
            index: IndexConfig::default(),
            generate_model: None,
            generate: quarry_generate::GenerateConfig::default(),
            ask: AskConfig::default(),
            record_key: None,
            min_free_disk_bytes: DEFAULT_MIN_FREE_BYTES,
            store_cache_bytes: quarry_store::DEFAULT_CACHE_BYTES,
        }
    }
}

/// The engine. Clone it freely: clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    storage: Arc<dyn Storage>,
    embedder: EmbedQueue,
    word_vectors: word_vectors::WordVectors,
    embed_model: String,
    embed_limits: EmbedLimits,
    document_limits: DocumentLimits,
    search_limits: SearchLimits,
    generator: Option<Arc<Generator>>,
    ask: AskConfig,
}

/// What the models have done, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// The embedding model's source.
    pub embed_model: String,
    /// Embed requests waiting for a model thread.
    pub embed_waiting: u64,
    /// Texts embedded since start.
    pub embedded_texts: u64,
    /// The generation model's source, if one is loaded.
    pub generate_model: Option<String>,
    /// The generation thread's counters, if one is loaded.
    pub generation: Option<quarry_generate::QueueStats>,
    /// A write failed on the disk: writes are refused until a restart.
    pub disk_writes_failed: bool,
}

/// The generation model's thread and its id.
pub(crate) struct Generator {
    queue: GenerateQueue,
    model_id: String,
}

impl Engine {
    /// Opens the data directory (creating it when missing) and loads the
    /// embedder, fetching it into the cache when needed. Blocking: call it
    /// before serving or from a blocking context.
    pub fn open(config: EngineConfig) -> Result<Self> {
        let _pages = huge_pages::HugePagesOff::new();
        // The store opens while the models load; the indexes are recovered
        // after the models, so that a server that cannot embed or generate
        // fails before spending time on index builds.
        std::thread::scope(|scope| {
            let (data_dir, record_key) = (config.data_dir.clone(), config.record_key.clone());
            let cache_bytes = config.store_cache_bytes;
            let store =
                scope.spawn(move || LocalStorage::open_store(&data_dir, record_key, cache_bytes));
            Self::open_on(config, |config, _| {
                let store = store
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                Ok(Arc::new(LocalStorage::with_store(
                    store,
                    &config.data_dir,
                    config.index,
                    config.min_free_disk_bytes,
                )?))
            })
        })
    }

    /// Loads the models, then opens the storage backend `storage` makes
    /// (given the configuration and the embedder's dimension, which a
    /// backend needs to create collections). Blocking.
    pub fn open_on(
        config: EngineConfig,
        storage: impl FnOnce(&EngineConfig, usize) -> Result<Arc<dyn Storage>>,
    ) -> Result<Self> {
        let _pages = huge_pages::HugePagesOff::new();
        // The two models load at once (each is most of a second of file
        // reading and weight packing): a restart waits for the slower one,
        // not for both.
        let (embedder, generator) = std::thread::scope(|scope| {
            let generator = scope.spawn(|| Self::load_generator(&config));
            let embedder = Self::load_embedder(&config);
            let generator = generator
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, EngineError>((embedder?, generator?))
        })?;
        let storage = storage(&config, embedder.dimension())?;
        Ok(Self::with_storage(config, storage, embedder, generator))
    }

    fn load_embedder(config: &EngineConfig) -> Result<EmbedQueue> {
        let model_dir = config
            .model_cache
            .fetch(&config.embed_model, &quarry_embed::MODEL_FILES)?;
        tracing::info!(model = %config.embed_model, dir = %model_dir.display(), "loading the embedding model");
        let embedder = EmbedQueue::start(&model_dir, config.embed_queue)?;
        tracing::info!(
            dimension = embedder.dimension(),
            max_seq_length = embedder.max_seq_length(),
            workers = config.embed_queue.workers,
            "embedding model ready"
        );
        Ok(embedder)
    }

    fn load_generator(config: &EngineConfig) -> Result<Option<(GenerateQueue, String)>> {
        Ok(match &config.generate_model {
            Some(source) => {
                let path = quarry_generate::fetch_generator(&config.model_cache, source)?;
                tracing::info!(model = %source, path = %path.display(), "loading the generation model");
                let queue = GenerateQueue::start(&path, config.generate)?;
                tracing::info!(
                    context_length = queue.context_length(),
                    queue_capacity = config.generate.queue_capacity,
                    batch = config.generate.batch,
                    kv_budget_mib = config.generate.kv_budget_bytes >> 20,
                    "generation model ready"
                );
                Some((queue, source.to_string()))
            }
            None => {
                tracing::warn!("no generation model: Rag.Ask answers UNAVAILABLE");
                None
            }
        })
    }

    /// Whether the storage backend can serve now (health checks).
    /// Blocking work on the blocking pool.
    pub async fn storage_health(&self) -> Result<()> {
        self.blocking(|inner| inner.storage.health()).await
    }

    /// Opens the data directory (the local backend: see
    /// [`storage::local`]) with models already started: the embedding
    /// queue (over any [`quarry_embed::Embedder`]) and, optionally, the
    /// generation queue with its model id. `config`'s model sources are
    /// only recorded. Blocking.
    pub fn open_with_models(
        config: EngineConfig,
        embedder: EmbedQueue,
        generator: Option<(GenerateQueue, String)>,
    ) -> Result<Self> {
        // After the models: a server that cannot embed or generate fails
        // before spending time on index builds.
        let storage = LocalStorage::open(
            &config.data_dir,
            config.record_key.clone(),
            config.store_cache_bytes,
            config.index,
            config.min_free_disk_bytes,
        )?;
        Ok(Self::with_storage(
            config,
            Arc::new(storage),
            embedder,
            generator,
        ))
    }

    /// An engine over any [`Storage`] backend, with models already
    /// started. `config`'s data directory, index and disk settings are
    /// the backend's business and are not read here.
    pub fn with_storage(
        config: EngineConfig,
        storage: Arc<dyn Storage>,
        embedder: EmbedQueue,
        generator: Option<(GenerateQueue, String)>,
    ) -> Self {
        let generator = generator.map(|(queue, model_id)| Arc::new(Generator { queue, model_id }));
        Self {
            inner: Arc::new(Inner {
                storage,
                embedder,
                word_vectors: Default::default(),
                embed_model: config.embed_model.to_string(),
                embed_limits: config.embed_limits,
                document_limits: config.document_limits,
                search_limits: config.search_limits,
                generator,
                ask: config.ask,
            }),
        }
    }

    /// Counters of the model threads (cheap: atomics).
    pub fn stats(&self) -> EngineStats {
        let inner = &self.inner;
        EngineStats {
            embed_model: inner.embed_model.clone(),
            embed_waiting: inner.embedder.waiting() as u64,
            embedded_texts: inner.embedder.embedded_texts(),
            generate_model: inner.generator.as_ref().map(|g| g.model_id.clone()),
            generation: inner.generator.as_ref().map(|g| g.queue.stats()),
            disk_writes_failed: inner.storage.writes_failed(),
        }
    }

    /// Writes everything to disk: the store, and a checkpoint of every
    /// changed index so that the next start replays nothing. Called on
    /// shutdown; blocking.
    pub fn flush(&self) -> Result<()> {
        self.inner.storage.flush()
    }

    /// Runs `f` against the storage on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| EngineError::Internal(format!("blocking task failed: {e}")))?
    }
}
