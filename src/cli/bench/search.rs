//! `quarry bench search`: end-to-end `Retrieval.Search` latency over gRPC,
//! and the same requests over the HTTP API (REST/JSON, one keep-alive
//! connection), against a real `quarry serve` process on a large
//! collection, and the time that server takes to come back after a stop.
//!
//! The collection is synthesised from a BEIR corpus by repeating its
//! passages under new ids until it holds `--chunks` chunks (one chunk per
//! passage). Embedding 100,000 passages would take this machine a quarter
//! of an hour, so each passage is embedded once and its copies get that
//! vector with a little noise (per-dimension sigma 0.01, cosine about 0.98
//! to the original), written straight into the store. The server then
//! builds its indexes from the store on its first start, exactly as it
//! recovers from lost index files. Copies carry a metadata key `copy` (0,
//! 1, ...) that the filtered run selects on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use quarry_core::{
    CollectionName, CollectionSettings, Document, MetaValue, Metadata, Quantization,
};
use quarry_embed::{EmbedQueue, QueueConfig, MODEL_FILES};
use quarry_models::{ModelCache, ModelSource, DEFAULT_EMBED_MODEL};
use quarry_store::{NewChunk, NewDocument, Store};
use serde_json::json;
use tonic::transport::Channel;

use super::percentile;
use quarry::proto::{self, retrieval_client::RetrievalClient};
use quarry::serve_process::{Logs, ServeOptions, ServeProcess};

const COLLECTION: &str = "bench";
/// Per-dimension noise of the copies' vectors.
const NOISE: f32 = 0.01;
/// Documents per store write while building.
const WRITE_BATCH: usize = 1000;

/// Flags of `quarry bench search`.
#[derive(Debug, clap::Args)]
pub struct SearchBench {
    /// BEIR folder: its corpus.jsonl is repeated into the collection, its
    /// queries.jsonl are the searches (cycled).
    #[arg(long)]
    pub data: PathBuf,
    /// Chunks in the synthesised collection.
    #[arg(long, default_value_t = 100_000)]
    pub chunks: usize,
    /// Data directory to build the collection in and keep; a directory that
    /// already holds a collection of that size is reused. [default: a
    /// temporary directory, removed afterwards]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Timed searches per run.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Untimed searches before each run.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// Hits per search.
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Embedding model source (for building the collection; the server
    /// uses its own default or QUARRY_EMBED_MODEL).
    #[arg(long, env = "QUARRY_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL)]
    pub model: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Serve the collection from a Qdrant cluster of this many nodes
    /// (started for the run; the collection is copied into it with `quarry
    /// migrate`, a shard per node and two copies of each where there are two
    /// nodes) instead of the embedded backend (0).
    #[arg(long, default_value_t = 0)]
    pub qdrant_nodes: usize,
    /// The collection's vectors: none (32-bit floats) or int8 (codes
    /// searched, floats rescored; see docs/performance.md).
    #[arg(long, default_value = "none")]
    pub quantization: Quantization,
}

/// Runs the benchmark.
pub async fn run(args: SearchBench) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("quarry-bench-search-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let build_dir = dir.clone();
    let (data, chunks, model) = (args.data.clone(), args.chunks, args.model.clone());
    let quantization = args.quantization;
    let (build_secs, footprint) =
        tokio::task::spawn_blocking(move || build(&build_dir, &data, chunks, &model, quantization))
            .await??;
    let queries = super::read_texts(&args.data.join("queries.jsonl"))?;
    anyhow::ensure!(!queries.is_empty(), "no queries in {}", args.data.display());
    let log = dir.join("bench-server.log");

    // On Qdrant: a cluster, the collection copied into it, and the server's
    // flags pointing at it.
    let mut cluster = None;
    // Fresh storage for each run's cluster, removed at the end.
    let qdrant_root = dir.join(format!("qdrant-{}", std::process::id()));
    let mut backend_args: Vec<String> = Vec::new();
    let mut load_secs = build_secs;
    let mut index_secs = None;
    if args.qdrant_nodes > 0 {
        let c = super::qdrant_cluster(args.qdrant_nodes, &qdrant_root)?;
        let urls = c.grpc_urls();
        let placement = super::bench_placement(args.qdrant_nodes);
        let migrate = crate::cli::migrate::MigrateArgs {
            from: dir.clone(),
            to_qdrant: urls.clone(),
            qdrant_api_key: None,
            qdrant_prefix: "bench".into(),
            record_key_file: None,
            batch: 256,
            shard_number: placement.shard_number,
            replication_factor: placement.replication_factor,
            write_consistency_factor: placement.write_consistency_factor,
        };
        let started = Instant::now();
        tokio::task::spawn_blocking(move || crate::cli::migrate::run(migrate)).await??;
        load_secs = started.elapsed().as_secs_f64();
        // Qdrant builds its HNSW graphs after the points arrive (the
        // collection is "yellow" meanwhile); searches are timed after that.
        let started = Instant::now();
        let info = format!("{}/collections/bench_c_{COLLECTION}", c.http_url(0));
        loop {
            let status = ureq::get(&info)
                .call()
                .ok()
                .and_then(|r| r.into_json::<serde_json::Value>().ok())
                .and_then(|v| v["result"]["status"].as_str().map(str::to_owned));
            if status.as_deref() == Some("green") {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "Qdrant did not finish indexing within an hour (status {status:?})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        index_secs = Some(started.elapsed().as_secs_f64());
        backend_args = vec![
            "--backend".into(),
            "qdrant".into(),
            "--qdrant-url".into(),
            urls.join(","),
            "--qdrant-prefix".into(),
            "bench".into(),
        ];
        cluster = Some(c);
    }

    // First start: no index files, so the server builds them from the store.
    let (server, first_start) = Server::start_with(&dir, &log, &backend_args).await?;
    let channel = server.channel().await?;
    let filter = proto::Filter {
        clause: Some(proto::filter::Clause::Equals(proto::FieldEquals {
            key: "copy".into(),
            value: Some(proto::MetadataValue {
                kind: Some(proto::metadata_value::Kind::IntValue(1)),
            }),
        })),
    };
    let copies = args.chunks.div_ceil(5000).max(1);
    let runs = [
        ("hybrid", proto::SearchMode::Hybrid, None),
        ("dense", proto::SearchMode::Dense, None),
        ("keyword", proto::SearchMode::Keyword, None),
        (
            "hybrid, filter copy=1",
            proto::SearchMode::Hybrid,
            Some(filter),
        ),
    ];
    let mut results = Vec::new();
    for (name, mode, filter) in runs {
        let mut client = RetrievalClient::new(channel.clone());
        let request = |q: &str| proto::SearchRequest {
            collection: COLLECTION.into(),
            query: q.into(),
            top_k: args.top_k,
            mode: mode as i32,
            filter: filter.clone(),
            ..Default::default()
        };
        for q in queries.iter().cycle().take(args.warmup) {
            client.search(request(q)).await?;
        }
        let mut ms = Vec::with_capacity(args.requests);
        for q in queries.iter().cycle().take(args.requests) {
            let t = Instant::now();
            let hits = client.search(request(q)).await?.into_inner().hits;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                hits.len() == args.top_k as usize,
                "{name}: {} hits, not {}",
                hits.len(),
                args.top_k
            );
        }
        results.push(timings(name, "gRPC", ms));
        // The same requests over the HTTP API, in their JSON mapping.
        let url = format!(
            "{}/v1/collections/{COLLECTION}/search",
            server
                .http_addr()
                .context("the server has no HTTP listener")?
        );
        let bodies = queries
            .iter()
            .cycle()
            .take(args.warmup + args.requests)
            .map(|q| serde_json::to_value(request(q)))
            .collect::<Result<Vec<_>, _>>()?;
        let (warmup, want) = (args.warmup, args.top_k as usize);
        let ms = tokio::task::spawn_blocking(move || rest_timings(&url, &bodies, warmup, want))
            .await??;
        results.push(timings(name, "REST", ms));
    }
    let quarry_rss = super::rss_mib(server.pid());
    let quarry_anon = super::status_mib(server.pid(), "RssAnon:");
    let quarry_file = super::status_mib(server.pid(), "RssFile:");
    let qdrant_rss: Option<f64> = cluster
        .as_ref()
        .map(|c| c.pids().into_iter().filter_map(super::rss_mib).sum());
    server.stop()?;

    // Restart: from the checkpoints the clean stop saved.
    let started = Instant::now();
    let (server, restart) = Server::start_with(&dir, &log, &backend_args).await?;
    let channel = server.channel().await?;
    RetrievalClient::new(channel)
        .search(proto::SearchRequest {
            collection: COLLECTION.into(),
            query: queries[0].clone(),
            top_k: args.top_k,
            ..Default::default()
        })
        .await?;
    let first_answer = started.elapsed();
    server.stop()?;
    if let Some(c) = cluster {
        c.stop();
        let _ = std::fs::remove_dir_all(&qdrant_root);
    }
    let backend = if args.qdrant_nodes == 0 {
        "embedded".to_owned()
    } else {
        format!("qdrant, {} node(s)", args.qdrant_nodes)
    };

    let report = json!({
        "backend": backend,
        "quantization": args.quantization.code(),
        "chunks": args.chunks,
        "copies_of_each_passage": copies,
        "load_seconds": load_secs,
        "load_docs_per_s": args.chunks as f64 / load_secs.max(1e-9),
        "qdrant_index_seconds": index_secs,
        "quarry_rss_mib": quarry_rss,
        "quarry_rss_anon_mib": quarry_anon,
        "quarry_rss_file_mib": quarry_file,
        "qdrant_rss_mib": qdrant_rss,
        "build_store_seconds": build_secs,
        "store_on_disk_bytes": footprint.on_disk,
        "store_held_bytes": footprint.held(),
        "store_trees": footprint
            .trees
            .iter()
            .map(|t| json!({
                "tree": t.name,
                "entries": t.entries,
                "key_bytes": t.key_bytes,
                "value_bytes": t.value_bytes,
            }))
            .collect::<Vec<_>>(),
        "first_start_seconds": first_start.as_secs_f64(),
        "restart_seconds": restart.as_secs_f64(),
        "restart_to_first_answer_seconds": first_answer.as_secs_f64(),
        "top_k": args.top_k,
        "runs": results,
        "server_log": log.display().to_string(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "backend: {backend}; collection: {} chunks ({} copies of each passage), vectors {}",
            args.chunks, copies, args.quantization
        );
        if args.qdrant_nodes > 0 {
            println!(
                "copied into Qdrant (stored vectors, no embedding) in {load_secs:.1} s: {:.0} docs/s; Qdrant's index build after it: {:.1} s",
                args.chunks as f64 / load_secs.max(1e-9),
                index_secs.unwrap_or_default()
            );
        }
        println!(
            "resident memory after the runs: quarry {} MiB ({} anonymous, {} mapped file pages){}",
            quarry_rss.map_or("?".into(), |m| format!("{m:.0}")),
            quarry_anon.map_or("?".into(), |m| format!("{m:.0}")),
            quarry_file.map_or("?".into(), |m| format!("{m:.0}")),
            qdrant_rss.map_or(String::new(), |m| format!(
                ", Qdrant nodes {m:.0} MiB in all"
            ))
        );
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let trees: Vec<String> = footprint
            .trees
            .iter()
            .filter(|t| t.entries > 0)
            .map(|t| format!("{} {:.2}", t.name, gib(t.key_bytes + t.value_bytes)))
            .collect();
        println!(
            "store: {:.2} GiB on disk (sled), holding {:.2} GiB of keys and values ({})",
            gib(footprint.on_disk),
            gib(footprint.held()),
            trees.join(", ")
        );
        println!(
            "first start on the data directory (builds the indexes from the store when it has none): {:.2} s",
            first_start.as_secs_f64()
        );
        println!(
            "restart after a clean stop: listening in {:.2} s, first answer in {:.2} s",
            restart.as_secs_f64(),
            first_answer.as_secs_f64()
        );
        println!(
            "{:<24} {:<5} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "Search", "over", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for r in &results {
            println!(
                "{:<24} {:<5} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                r["run"].as_str().unwrap_or_default(),
                r["transport"].as_str().unwrap_or_default(),
                r["requests"].as_u64().unwrap_or_default(),
                r["p50_ms"].as_f64().unwrap_or_default(),
                r["p90_ms"].as_f64().unwrap_or_default(),
                r["p99_ms"].as_f64().unwrap_or_default(),
                r["max_ms"].as_f64().unwrap_or_default()
            );
        }
        println!("server log: {}", log.display());
    }
    Ok(())
}

/// Deterministic noise in [-1, 1).
fn noise(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// A copy's vector: the original plus noise, renormalised. Uniform noise
/// in [-1, 1) has standard deviation 1/sqrt(3).
fn perturbed(v: &[f32], seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let scale = NOISE * 3f32.sqrt();
    let mut out: Vec<f32> = v.iter().map(|x| x + scale * noise(&mut state)).collect();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

/// Builds the collection in `dir`'s store unless it is there; returns the
/// seconds spent.
/// Builds (or reuses) the store, returning the seconds it took and what the
/// store holds against its size on disk.
fn build(
    dir: &Path,
    data: &Path,
    chunks: usize,
    model: &str,
    quantization: Quantization,
) -> anyhow::Result<(f64, quarry_store::Footprint)> {
    let started = Instant::now();
    let store = Store::open(dir.join("store"))?;
    let name = CollectionName::parse(COLLECTION)?;
    if let Ok(existing) = store.collection(&name) {
        anyhow::ensure!(
            existing.chunk_count as usize == chunks,
            "{} already holds a {COLLECTION:?} collection of {} chunks; pass another --data-dir",
            dir.display(),
            existing.chunk_count
        );
        anyhow::ensure!(
            existing.settings.quantization == quantization,
            "{} holds a {COLLECTION:?} collection with {} vectors, not {quantization}; pass another --data-dir",
            dir.display(),
            existing.settings.quantization
        );
        eprintln!("reusing the collection in {}", dir.display());
        return Ok((0.0, store.footprint()?));
    }
    let corpus_path = data.join("corpus.jsonl");
    let mut passages = Vec::new();
    for (n, v) in super::super::eval::jsonl(&corpus_path)?.iter().enumerate() {
        let field = |f| super::super::eval::field(v, f, &corpus_path, n);
        let title = v.get("title").and_then(|t| t.as_str()).unwrap_or_default();
        passages.push((field("_id")?, title.to_owned(), field("text")?));
    }
    anyhow::ensure!(!passages.is_empty(), "{} is empty", corpus_path.display());

    let source: ModelSource = model.parse()?;
    let model_dir = ModelCache::from_env().fetch(&source, &MODEL_FILES)?;
    let queue = EmbedQueue::start(&model_dir, QueueConfig::default())?;
    let texts: Vec<String> = passages
        .iter()
        .map(|(_, title, text)| {
            if title.trim().is_empty() {
                text.clone()
            } else {
                format!("{title}\n{text}")
            }
        })
        .collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(256) {
        vectors.extend(queue.embed_blocking(batch.to_vec())?);
        eprint!("\rembedded {}/{} passages", vectors.len(), texts.len());
    }
    eprintln!();
    drop(queue);

    let settings = CollectionSettings {
        quantization,
        ..CollectionSettings::default()
    };
    store.create_collection(&name, settings)?;
    for start in (0..chunks).step_by(WRITE_BATCH) {
        let docs: Vec<NewDocument> = (start..chunks.min(start + WRITE_BATCH))
            .map(|i| {
                let p = i % passages.len();
                let copy = i / passages.len();
                let (id, title, text) = &passages[p];
                let document = Document {
                    id: format!("{id}-{copy}"),
                    title: title.clone(),
                    text: text.clone(),
                    metadata: Metadata::from([("copy".to_owned(), MetaValue::Int(copy as i64))]),
                };
                let vector = if copy == 0 {
                    vectors[p].clone()
                } else {
                    perturbed(&vectors[p], i as u64)
                };
                NewDocument {
                    content_hash: quarry_engine::content_hash(&document),
                    chunks: vec![NewChunk {
                        text: text.clone(),
                        vector,
                    }],
                    document,
                }
            })
            .collect();
        store.upsert_documents(&name, &docs)?;
        eprint!("\rwrote {}/{chunks} chunks", start + docs.len());
    }
    eprintln!();
    store.flush()?;
    let secs = started.elapsed().as_secs_f64();
    Ok((secs, store.footprint()?))
}

/// Percentiles of one run's latencies.
fn timings(run: &str, transport: &str, mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    json!({
        "run": run,
        "transport": transport,
        "requests": ms.len(),
        "p50_ms": percentile(&ms, 50.0),
        "p90_ms": percentile(&ms, 90.0),
        "p99_ms": percentile(&ms, 99.0),
        "max_ms": ms.last().copied().unwrap_or(f64::NAN),
    })
}

/// Latencies of Search over the HTTP API, one keep-alive connection
/// (as the gRPC client's one channel); the first `warmup` are not timed.
fn rest_timings(
    url: &str,
    bodies: &[serde_json::Value],
    warmup: usize,
    want: usize,
) -> anyhow::Result<Vec<f64>> {
    let agent = ureq::AgentBuilder::new().build();
    let mut ms = Vec::with_capacity(bodies.len().saturating_sub(warmup));
    for (i, body) in bodies.iter().enumerate() {
        let t = Instant::now();
        let reply: serde_json::Value = agent.post(url).send_json(body.clone())?.into_json()?;
        let elapsed = t.elapsed().as_secs_f64() * 1000.0;
        let hits = reply["hits"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(hits == want, "REST: {hits} hits, not {want}");
        if i >= warmup {
            ms.push(elapsed);
        }
    }
    Ok(ms)
}

/// A `quarry serve` child process on loopback for benchmarks (this
/// binary, auth off), logging to a file: the harness the end-to-end tests
/// use, [`quarry::serve_process`].
pub(super) struct Server(ServeProcess);

impl Server {
    /// Starts a server on `dir` with `extra` flags (the storage backend's,
    /// the generator's), logging to `log`; returns it with the time from
    /// spawn to listening.
    pub(super) async fn start_with(
        dir: &Path,
        log: &Path,
        extra: &[String],
    ) -> anyhow::Result<(Self, Duration)> {
        let extra = extra.to_vec();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let bin = std::env::current_exe()?;
        let dir = dir.to_path_buf();
        let process = tokio::task::spawn_blocking(move || {
            let mut args = vec!["--no-auth"];
            args.extend(extra.iter().map(String::as_str));
            let options = ServeOptions {
                bin: &bin,
                data_dir: &dir,
                args: &args,
                // quarry_index's debug lines are the recovery's phases and
                // a rebuild's breakdown, once per start.
                rust_log: "warn,quarry_engine=info,quarry=info,quarry_index=debug",
                // A large data directory may rebuild its indexes first.
                startup_limit: Duration::from_secs(3600),
            };
            ServeProcess::start(&options, Logs::File(log))
        })
        .await?
        .map_err(|e| anyhow::anyhow!("{e}; see its log"))?;
        let startup = process.startup();
        Ok((Self(process), startup))
    }

    /// The server's process id.
    pub(super) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// `http://127.0.0.1:PORT` of its HTTP API.
    pub(super) fn http_addr(&self) -> Option<&str> {
        self.0.http_addr()
    }

    pub(super) async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(self.0.channel().await?)
    }

    /// SIGTERM, then waits for a clean exit.
    pub(super) fn stop(self) -> anyhow::Result<()> {
        let status = self.0.stop(Duration::from_secs(600))?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_stay_close_to_their_original() {
        let mut state = 7;
        let mut v: Vec<f32> = (0..384).map(|_| noise(&mut state)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        let c = perturbed(&v, 12345);
        let norm: f32 = c.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos: f32 = v.iter().zip(&c).map(|(a, b)| a * b).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!((0.95..0.995).contains(&cos), "cosine {cos}");
        assert_ne!(perturbed(&v, 1), perturbed(&v, 2));
    }
}
