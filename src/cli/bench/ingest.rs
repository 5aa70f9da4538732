//! `quarry bench ingest`: the bulk loader end to end beside the embedder
//! alone, in one run.
//!
//! 1. Embedding only: every document's text (title and text, as the
//!    server embeds a one-chunk document) through the embedder's queue
//!    with the server's default settings, 256 texts per request.
//! 2. End to end: a server in this process on a fresh data directory and
//!    `quarry ingest`'s own loader sending the corpus file over gRPC
//!    (parse, BulkIngest, chunk, embed, store, index).
//!
//! The ratio of the two rates is what the loader, chunker, store and
//! indexes cost; the goal is at least 90%.

use std::path::PathBuf;
use std::time::Instant;

use quarry::grpc::ServerOptions;
use quarry_core::{CollectionName, CollectionSettings};
use quarry_embed::{EmbedQueue, QueueConfig, MODEL_FILES};
use quarry_engine::{CreateCollection, EngineConfig};
use quarry_models::{ModelCache, ModelSource, DEFAULT_EMBED_MODEL};
use serde_json::json;

use crate::cli::ingest::{self, IngestArgs};
use crate::cli::ClientArgs;

/// Flags of `quarry bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestBench {
    /// A JSONL corpus (BEIR corpus.jsonl: _id, title, text).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Embedding model source.
    #[arg(long, env = "QUARRY_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL)]
    pub model: String,
    /// Documents per BulkIngest message (as `quarry ingest --batch-docs`).
    #[arg(long, default_value_t = 256)]
    pub batch_docs: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Ingest into a Qdrant cluster of this many nodes (started for the
    /// run; a shard per node, two copies of each where there are two)
    /// instead of the embedded backend (0).
    #[arg(long, default_value_t = 0)]
    pub qdrant_nodes: usize,
}

/// Runs the benchmark.
pub async fn run(args: IngestBench) -> anyhow::Result<()> {
    let records = crate::cli::eval::jsonl(&args.corpus)?;
    let texts: Vec<String> = records
        .iter()
        .map(|v| {
            let title = v["title"].as_str().unwrap_or("").trim();
            let text = v["text"].as_str().unwrap_or("");
            if title.is_empty() {
                text.to_owned()
            } else {
                format!("{title}\n{text}")
            }
        })
        .collect();
    let docs = texts.len();
    anyhow::ensure!(docs > 0, "{} has no documents", args.corpus.display());
    let source: ModelSource = args.model.parse()?;
    let cache = ModelCache::from_env();

    // 1. The embedder alone.
    let dir = cache.fetch(&source, &MODEL_FILES)?;
    let queue = EmbedQueue::start(&dir, QueueConfig::default())?;
    queue
        .embed(texts.iter().take(64).cloned().collect())
        .await?;
    let started = Instant::now();
    for request in texts.chunks(256) {
        queue.embed(request.to_vec()).await?;
    }
    let embed_secs = started.elapsed().as_secs_f64();
    drop(queue);

    // 2. The loader against a server in this process.
    let data = tempfile::Builder::new()
        .prefix("quarry-bench-ingest-")
        .tempdir()?;
    let config = EngineConfig::retrieval_only(data.path().to_path_buf(), cache, source);
    let (cluster, backend) = if args.qdrant_nodes > 0 {
        let c = super::qdrant_cluster(args.qdrant_nodes, &data.path().join("qdrant"))?;
        let mut q = quarry_qdrant::QdrantConfig::new(c.grpc_urls());
        q.prefix = "bench".into();
        (Some(c), quarry::config::Backend::Qdrant(q))
    } else {
        (None, quarry::config::Backend::Embedded)
    };
    let engine = tokio::task::spawn_blocking(move || crate::serve::open_engine_on(config, backend))
        .await??;
    engine
        .create_collection(CreateCollection {
            name: CollectionName::parse("bench")?,
            settings: CollectionSettings::default(),
            placement: if args.qdrant_nodes > 0 {
                super::bench_placement(args.qdrant_nodes)
            } else {
                Default::default()
            },
        })
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::serve::serve_until_stopped(
        engine,
        listener,
        ServerOptions {
            max_message_bytes: quarry::config::DEFAULT_MAX_MESSAGE_BYTES,
            auth: quarry::auth::Authenticator::off(),
            tls: None,
        },
        None,
        std::time::Duration::from_secs(30),
        stop_rx,
    ));
    let report = ingest::load(IngestArgs {
        paths: vec![args.corpus.clone()],
        collection: "bench".into(),
        create: false,
        id_field: "id".into(),
        title_field: "title".into(),
        text_field: "text".into(),
        metadata_field: "metadata".into(),
        batch_docs: args.batch_docs,
        batch_bytes: 4 * 1024 * 1024,
        strict: false,
        client: ClientArgs {
            addr: format!("http://{addr}"),
            // Quiet: no progress lines in the measurement.
            json: true,
            api_key: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
        },
    })
    .await?;
    let _ = stop_tx.send(true);
    server.await??;
    if let Some(c) = cluster {
        c.stop();
    }
    let loaded = report.reply.added;
    anyhow::ensure!(
        loaded as usize == docs,
        "loaded {loaded} of {docs} documents ({} refused, {} bad)",
        report.refused.len(),
        report.bad.len()
    );

    let embed_rate = docs as f64 / embed_secs;
    let ingest_rate = docs as f64 / report.seconds;
    if args.json {
        println!(
            "{}",
            json!({
                "qdrant_nodes": args.qdrant_nodes,
                "documents": docs,
                "chunks": report.reply.chunks_written,
                "embed_only_docs_per_s": embed_rate,
                "ingest_docs_per_s": ingest_rate,
                "ratio": ingest_rate / embed_rate,
            })
        );
    } else {
        if args.qdrant_nodes > 0 {
            println!("backend: Qdrant, {} node(s)", args.qdrant_nodes);
        }
        println!(
            "{docs} documents, {} chunks\n  embedding only   {embed_rate:8.1} docs/s ({embed_secs:.1} s)\n  quarry ingest    {ingest_rate:8.1} docs/s ({:.1} s)\n  ratio            {:.1}%",
            report.reply.chunks_written,
            report.seconds,
            100.0 * ingest_rate / embed_rate
        );
    }
    Ok(())
}
