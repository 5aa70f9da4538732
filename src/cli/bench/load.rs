//! `quarry bench load`: a real `quarry serve` process under K concurrent
//! clients on loopback, each with its own connection, mixing Search, Ask
//! and Upsert for a bounded time; per method p50/p95/p99 latency and
//! throughput, the server's peak RSS, and optionally a soak with RSS
//! sampled over time.
//!
//! The collection is the first `--documents` passages of a BEIR corpus,
//! loaded through BulkIngest. Searches and Asks take the corpus's queries
//! in turn. Upserts replace a bounded set of ids per client (each write a
//! new revision of a corpus passage, so it is chunked and embedded), so the
//! collection's size stays steady over a soak: memory that grows is a leak,
//! not data. RESOURCE_EXHAUSTED is the server shedding load as designed and
//! is counted apart; any other error fails the benchmark.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tonic::transport::Channel;
use tonic::Code;

use super::percentile;
use super::search::Server;
use quarry::proto::{
    self, collections_client::CollectionsClient, documents_client::DocumentsClient,
    rag_client::RagClient, retrieval_client::RetrievalClient,
};

const COLLECTION: &str = "load";
/// Ids each client rewrites in turn.
const IDS_PER_CLIENT: u64 = 32;
/// Documents per BulkIngest message while loading.
const LOAD_BATCH: usize = 256;

/// Flags of `quarry bench load`.
#[derive(Debug, clap::Args)]
pub struct LoadBench {
    /// BEIR folder: corpus.jsonl (the collection and upsert texts) and
    /// queries.jsonl (searches and questions).
    #[arg(long)]
    pub data: PathBuf,
    /// Corpus passages loaded before the runs.
    #[arg(long, default_value_t = 2000)]
    pub documents: usize,
    /// Concurrent clients: one run per value.
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32, 128])]
    pub clients: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// Percent of Search, Ask and Upsert calls.
    #[arg(long, value_delimiter = ',', default_values_t = [80, 5, 15])]
    pub mix: Vec<u32>,
    /// Tokens per Ask answer (the model's default is far longer; short
    /// answers keep Ask from being the whole benchmark).
    #[arg(long, default_value_t = 16)]
    pub ask_tokens: u32,
    /// After the runs, a soak of this many seconds at the middle client
    /// count with the server's RSS sampled; 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub soak_secs: u64,
    /// Seconds between RSS samples in the soak.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// Data directory for the server. [default: a temporary directory]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The server's --generate-batch (answers decoded together; 1 is one
    /// Ask at a time, as before continuous batching). [default: the
    /// server's]
    #[arg(long)]
    pub generate_batch: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Method {
    Search,
    Ask,
    Upsert,
}

const METHODS: [Method; 3] = [Method::Search, Method::Ask, Method::Upsert];

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Search => "Search",
            Method::Ask => "Ask",
            Method::Upsert => "Upsert",
        }
    }
}

/// One client's observations.
#[derive(Default)]
struct Tally {
    /// Milliseconds of successful calls, by method.
    ms: [Vec<f64>; 3],
    /// RESOURCE_EXHAUSTED answers, by method.
    shed: [u64; 3],
    /// Other failures, by method, and the first message.
    errors: [u64; 3],
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for i in 0..3 {
            self.ms[i].extend_from_slice(&other.ms[i]);
            self.shed[i] += other.shed[i];
            self.errors[i] += other.errors[i];
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// What the clients share.
struct Workload {
    queries: Vec<String>,
    passages: Vec<String>,
    mix: [u32; 3],
    ask_tokens: u32,
}

/// splitmix64, seeded per client: each run repeats the same call sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Runs the benchmark.
pub async fn run(args: LoadBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.mix.len() == 3 && args.mix.iter().sum::<u32>() > 0,
        "--mix takes three percentages: Search,Ask,Upsert"
    );
    anyhow::ensure!(
        !args.clients.is_empty() && args.clients.iter().all(|&k| k > 0),
        "--clients must list client counts above 0"
    );
    let passages = super::read_texts(&args.data.join("corpus.jsonl"))?;
    let queries = super::read_texts(&args.data.join("queries.jsonl"))?;
    anyhow::ensure!(
        !passages.is_empty() && !queries.is_empty(),
        "{} needs corpus.jsonl and queries.jsonl with texts",
        args.data.display()
    );
    let temp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("quarry-bench-load-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let log = dir.join("bench-server.log");
    std::fs::create_dir_all(&dir)?;
    let extra: Vec<String> = args
        .generate_batch
        .map(|b| vec!["--generate-batch".to_string(), b.to_string()])
        .unwrap_or_default();
    let (server, _) = Server::start_with(&dir, &log, &extra).await?;
    let pid = server.pid();
    let channel = server.channel().await?;
    let loaded = load(&channel, &passages[..args.documents.min(passages.len())]).await?;
    eprintln!("loaded {loaded} documents; server log: {}", log.display());

    let work = Arc::new(Workload {
        queries,
        passages,
        mix: [args.mix[0], args.mix[1], args.mix[2]],
        ask_tokens: args.ask_tokens,
    });
    let mut runs = Vec::new();
    for &k in &args.clients {
        eprintln!("{k} clients for {} s ...", args.secs);
        let (tally, elapsed) =
            drive(&server, &work, k, Duration::from_secs(args.secs), None).await?;
        runs.push(report(k, elapsed, &tally, rss(pid)?));
    }
    let mut soak = None;
    if args.soak_secs > 0 {
        let k = args.clients[args.clients.len() / 2];
        eprintln!("soak: {k} clients for {} s ...", args.soak_secs);
        let mut samples = Vec::new();
        let (tally, elapsed) = drive(
            &server,
            &work,
            k,
            Duration::from_secs(args.soak_secs),
            Some((
                pid,
                Duration::from_secs(args.sample_secs.max(1)),
                &mut samples,
            )),
        )
        .await?;
        soak = Some((report(k, elapsed, &tally, rss(pid)?), samples));
    }
    server.stop()?;

    let failed: u64 = runs
        .iter()
        .chain(soak.iter().map(|(r, _)| r))
        .map(|r| r.errors)
        .sum();
    if args.json {
        let soak_json = soak.as_ref().map(|(r, samples)| {
            json!({
                "run": r.json(),
                "rss_mb": samples.iter().map(|(t, mb)| json!([t, mb])).collect::<Vec<_>>(),
            })
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "documents": loaded,
                "secs_per_run": args.secs,
                "mix_percent": {"search": args.mix[0], "ask": args.mix[1], "upsert": args.mix[2]},
                "ask_tokens": args.ask_tokens,
                "generate_batch": args.generate_batch,
                "runs": runs.iter().map(Report::json).collect::<Vec<_>>(),
                "soak": soak_json,
            }))?
        );
    } else {
        println!(
            "{loaded} documents; {} s per run; mix Search {}% / Ask {}% ({} tokens) / Upsert {}%; generate batch {}",
            args.secs,
            args.mix[0],
            args.mix[1],
            args.ask_tokens,
            args.mix[2],
            args.generate_batch
                .map_or_else(|| "the server's default".to_string(), |b| b.to_string())
        );
        println!(
            "| clients | method | calls | shed | errors | p50 ms | p95 ms | p99 ms | calls/s | server peak RSS MB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for r in runs.iter().chain(soak.iter().map(|(r, _)| r)) {
            r.print();
        }
        if let Some((_, samples)) = &soak {
            print_soak(samples);
        }
    }
    if let Some(first) = runs
        .iter()
        .chain(soak.iter().map(|(r, _)| r))
        .find_map(|r| r.first_error.clone())
    {
        anyhow::bail!(
            "{failed} calls failed with errors other than RESOURCE_EXHAUSTED; the first: {first}"
        );
    }
    Ok(())
}

/// Loads passages as documents `p0`, `p1`, ... through BulkIngest.
async fn load(channel: &Channel, passages: &[String]) -> anyhow::Result<u64> {
    CollectionsClient::new(channel.clone())
        .create_collection(proto::CreateCollectionRequest {
            name: COLLECTION.into(),
            settings: None,
            placement: None,
        })
        .await?;
    let messages: Vec<proto::BulkIngestRequest> = passages
        .chunks(LOAD_BATCH)
        .enumerate()
        .map(|(b, batch)| proto::BulkIngestRequest {
            collection: COLLECTION.into(),
            documents: batch
                .iter()
                .enumerate()
                .map(|(i, text)| proto::Document {
                    id: format!("p{}", b * LOAD_BATCH + i),
                    text: text.clone(),
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let r = DocumentsClient::new(channel.clone())
        .max_encoding_message_size(64 * 1024 * 1024)
        .bulk_ingest(tokio_stream::iter(messages))
        .await?
        .into_inner();
    anyhow::ensure!(r.failed.is_empty(), "loading failed: {:?}", r.failed);
    Ok(r.added + r.updated + r.unchanged)
}

type Samples<'a> = Option<(u32, Duration, &'a mut Vec<(u64, f64)>)>;

/// `k` clients, each on its own connection, until `length` has passed;
/// with `samples`, the server's RSS is recorded meanwhile.
async fn drive(
    server: &Server,
    work: &Arc<Workload>,
    k: usize,
    length: Duration,
    samples: Samples<'_>,
) -> anyhow::Result<(Tally, Duration)> {
    let mut channels = Vec::with_capacity(k);
    for _ in 0..k {
        channels.push(server.channel().await?);
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + length;
    let mut tasks = Vec::with_capacity(k);
    for (c, channel) in channels.into_iter().enumerate() {
        let work = Arc::clone(work);
        tasks.push(tokio::spawn(client(c as u64, channel, work, deadline)));
    }
    if let Some((pid, every, out)) = samples {
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(every.min(deadline - tokio::time::Instant::now())).await;
            let (now, _) = rss(pid)?;
            out.push((started.elapsed().as_secs(), now));
        }
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    Ok((tally, started.elapsed()))
}

/// One client's loop of calls.
async fn client(
    c: u64,
    channel: Channel,
    work: Arc<Workload>,
    deadline: tokio::time::Instant,
) -> Tally {
    let mut rng = Rng(c.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x1234_5678);
    let mut tally = Tally::default();
    let total: u32 = work.mix.iter().sum();
    let mut n = 0u64;
    while tokio::time::Instant::now() < deadline {
        n += 1;
        let roll = (rng.next() % u64::from(total)) as u32;
        let method = if roll < work.mix[0] {
            Method::Search
        } else if roll < work.mix[0] + work.mix[1] {
            Method::Ask
        } else {
            Method::Upsert
        };
        let query = &work.queries[(rng.next() % work.queries.len() as u64) as usize];
        let t = Instant::now();
        let result = match method {
            Method::Search => RetrievalClient::new(channel.clone())
                .search(proto::SearchRequest {
                    collection: COLLECTION.into(),
                    query: query.clone(),
                    top_k: 10,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Method::Ask => ask(&channel, query, work.ask_tokens).await,
            Method::Upsert => {
                let passage = &work.passages[(rng.next() % work.passages.len() as u64) as usize];
                DocumentsClient::new(channel.clone())
                    .upsert(proto::UpsertRequest {
                        collection: COLLECTION.into(),
                        documents: vec![proto::Document {
                            id: format!("load-{c}-{}", n % IDS_PER_CLIENT),
                            text: format!("{passage} (revision {n})"),
                            ..Default::default()
                        }],
                    })
                    .await
                    .map(|_| ())
            }
        };
        let i = method as usize;
        match result {
            Ok(()) => tally.ms[i].push(t.elapsed().as_secs_f64() * 1000.0),
            Err(s) if s.code() == Code::ResourceExhausted => {
                tally.shed[i] += 1;
                // Back off a little, as a well-behaved client does.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(s) => {
                tally.errors[i] += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{}: {s}", method.name()));
            }
        }
    }
    tally
}

/// An Ask read to its end.
async fn ask(channel: &Channel, question: &str, tokens: u32) -> Result<(), tonic::Status> {
    let mut stream = RagClient::new(channel.clone())
        .ask(proto::AskRequest {
            collection: COLLECTION.into(),
            question: question.into(),
            generation: Some(proto::GenerationParams {
                max_new_tokens: Some(tokens),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

/// The server's resident set now and its peak, in MB (Linux /proc).
fn rss(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok((kb("VmRSS:") / 1000.0, kb("VmHWM:") / 1000.0))
}

/// One run's figures.
struct Report {
    clients: usize,
    secs: f64,
    rows: Vec<(Method, usize, u64, u64, [f64; 3])>,
    errors: u64,
    first_error: Option<String>,
    peak_rss_mb: f64,
}

fn report(clients: usize, elapsed: Duration, tally: &Tally, rss: (f64, f64)) -> Report {
    let rows = METHODS
        .iter()
        .map(|&m| {
            let i = m as usize;
            let mut ms = tally.ms[i].clone();
            ms.sort_by(f64::total_cmp);
            let p = [50.0, 95.0, 99.0].map(|q| percentile(&ms, q));
            (m, ms.len(), tally.shed[i], tally.errors[i], p)
        })
        .collect();
    Report {
        clients,
        secs: elapsed.as_secs_f64(),
        rows,
        errors: tally.errors.iter().sum(),
        first_error: tally.first_error.clone(),
        peak_rss_mb: rss.1,
    }
}

impl Report {
    fn print(&self) {
        for (m, calls, shed, errors, p) in &self.rows {
            println!(
                "| {} | {} | {calls} | {shed} | {errors} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
                self.clients,
                m.name(),
                p[0],
                p[1],
                p[2],
                *calls as f64 / self.secs,
                self.peak_rss_mb
            );
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "clients": self.clients,
            "secs": self.secs,
            "peak_rss_mb": self.peak_rss_mb,
            "methods": self.rows.iter().map(|(m, calls, shed, errors, p)| json!({
                "method": m.name(),
                "calls": calls,
                "shed": shed,
                "errors": errors,
                "p50_ms": p[0],
                "p95_ms": p[1],
                "p99_ms": p[2],
                "calls_per_sec": *calls as f64 / self.secs,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The soak's RSS curve in brief: the samples, and the growth of the
/// second half's peak over the first half's.
fn print_soak(samples: &[(u64, f64)]) {
    if samples.is_empty() {
        return;
    }
    let line: Vec<String> = samples
        .iter()
        .map(|(t, mb)| format!("{t}s {mb:.0}"))
        .collect();
    println!("soak RSS MB: {}", line.join(", "));
    let half = samples.len() / 2;
    let peak = |s: &[(u64, f64)]| s.iter().map(|(_, mb)| *mb).fold(f64::NAN, f64::max);
    if half > 0 {
        let (a, b) = (peak(&samples[..half]), peak(&samples[half..]));
        println!(
            "soak: first-half peak {a:.0} MB, second-half peak {b:.0} MB ({:+.1}%)",
            (b - a) / a * 100.0
        );
    }
}
