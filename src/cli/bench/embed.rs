//! `quarry bench embed`: embedding throughput over a corpus and
//! single-query latency, in process.

use std::path::PathBuf;
use std::time::Instant;

use quarry_embed::{EmbedQueue, QueueConfig, SentenceEmbedder, MODEL_FILES};
use quarry_models::{ModelCache, ModelSource, DEFAULT_EMBED_MODEL};
use serde_json::json;

use super::{percentile, read_texts};

/// Flags of `quarry bench embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedBench {
    /// JSONL corpus with a "text" field per line (BEIR corpus.jsonl).
    #[arg(long)]
    pub corpus: PathBuf,
    /// JSONL queries with a "text" field per line; cycled to --queries-count.
    #[arg(long)]
    pub queries: PathBuf,
    /// Number of single-query embeddings to time.
    #[arg(long, default_value_t = 200)]
    pub queries_count: usize,
    /// Embedding model source.
    #[arg(long, env = "QUARRY_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL)]
    pub model: String,
    /// Model threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 2048)]
    pub batch_tokens: usize,
    /// Compute threads per model thread. [default: cores / workers]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Texts per request sent to the queue during the corpus run.
    #[arg(long, default_value_t = 256)]
    pub request_size: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EmbedBench) -> anyhow::Result<()> {
    let corpus = read_texts(&args.corpus)?;
    let queries = read_texts(&args.queries)?;
    anyhow::ensure!(
        !queries.is_empty(),
        "{} has no queries",
        args.queries.display()
    );
    let source: ModelSource = args.model.parse()?;
    let dir = ModelCache::from_env().fetch(&source, &MODEL_FILES)?;

    // Token count of the corpus as the model sees it (after truncation).
    let tokenizer_model = SentenceEmbedder::load(&dir, 1)?;
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let tokens: usize = tokenizer_model
        .tokenize(&refs)?
        .iter()
        .map(|e| e.len())
        .sum();
    drop(tokenizer_model);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores / args.workers.max(1)).max(1));
    let queue = EmbedQueue::start(
        &dir,
        QueueConfig {
            workers: args.workers,
            capacity: 1024,
            max_batch_tokens: args.batch_tokens,
            threads_per_worker: threads,
        },
    )?;
    // Warm-up: first-touch of the mapped weights and allocator pools.
    queue.embed_blocking(corpus.iter().take(64).cloned().collect())?;

    // One client thread per model thread keeps every model thread busy, as
    // concurrent clients of a server would.
    let start = Instant::now();
    let chunks: Vec<&[String]> = corpus.chunks(args.request_size.max(1)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let embedded: usize = std::thread::scope(|s| {
        let clients: Vec<_> = (0..args.workers.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<usize> {
                    let mut n = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else {
                            return Ok(n);
                        };
                        n += queue.embed_blocking(chunk.to_vec())?.len();
                    }
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("client thread panicked"))
            .sum::<anyhow::Result<usize>>()
    })?;
    let corpus_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        embedded == corpus.len(),
        "embedded {embedded} of {}",
        corpus.len()
    );

    let mut latencies = Vec::with_capacity(args.queries_count);
    for q in queries.iter().cycle().take(args.queries_count) {
        let t = Instant::now();
        queue.embed_blocking(vec![q.clone()])?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    let report = json!({
        "model": source.to_string(),
        "workers": args.workers,
        "batch_tokens": args.batch_tokens,
        "threads_per_worker": threads,
        "passages": corpus.len(),
        "tokens": tokens,
        "corpus_seconds": corpus_secs,
        "passages_per_second": corpus.len() as f64 / corpus_secs,
        "tokens_per_second": tokens as f64 / corpus_secs,
        "query_count": latencies.len(),
        "query_p50_ms": percentile(&latencies, 50.0),
        "query_p99_ms": percentile(&latencies, 99.0),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "corpus: {} passages, {} tokens in {:.2} s: {:.1} passages/s, {:.0} tokens/s",
            corpus.len(),
            tokens,
            corpus_secs,
            report["passages_per_second"].as_f64().unwrap_or_default(),
            report["tokens_per_second"].as_f64().unwrap_or_default()
        );
        println!(
            "single query over {} queries: p50 {:.2} ms, p99 {:.2} ms ({} model thread(s), {} compute thread(s) each)",
            latencies.len(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            args.workers,
            threads
        );
    }
    Ok(())
}
