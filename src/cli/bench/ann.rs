//! `quarry bench ann`: the HNSW index alone, as Quarry builds and searches
//! it ([`quarry_index::Graph`]: parallel insertion on every core, the
//! search's distance kernels, unreachable points linked back), recall@10
//! against exact search and single-thread queries per second at several
//! ef_search values.
//!
//! Data sets:
//! - `fashion-mnist:DIR`: the standard fashion-mnist-784-euclidean set
//!   (Debian's dataset-fashion-mnist: 60,000 base images, queries from the
//!   10,000 test images, uint8 IDX, gzipped), L2 distance.
//! - `beir:DIR`: a BEIR folder's passages and queries embedded with the
//!   default model, cosine (dot product of unit vectors), exactly what
//!   Quarry's dense retriever searches.
//!
//! `--export DIR` writes the base vectors, queries, exact neighbours and
//! parameters (fvecs/ivecs and JSON), so that another library
//! (scripts/ann_hnswlib.py) is measured on identical data in the same run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use quarry_embed::{EmbedQueue, QueueConfig, MODEL_FILES};
use quarry_index::Graph;
use quarry_models::{ModelCache, ModelSource, DEFAULT_EMBED_MODEL};
use rayon::prelude::*;
use serde_json::json;

const K: usize = 10;

/// Flags of `quarry bench ann`.
#[derive(Debug, clap::Args)]
pub struct AnnBench {
    /// fashion-mnist:DIR (IDX files, searched under DIR) or beir:DIR.
    #[arg(long)]
    pub dataset: String,
    /// Queries to run (the first ones of the set).
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// HNSW M (links per node).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// ef_search values, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160,320")]
    pub ef: Vec<usize>,
    /// Times each query set is run per ef value (the best pass counts).
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Write base.fvecs, queries.fvecs, truth.ivecs and params.json here.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Embedding model for beir: data sets.
    #[arg(long, env = "QUARRY_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL)]
    pub model: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Search int8 codes of the vectors and rescore the candidates with
    /// the floats (a collection's `quantization: int8`).
    #[arg(long)]
    pub int8: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    L2,
    Cosine,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
        }
    }

    /// Smaller is nearer.
    fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
            Metric::Cosine => 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
        }
    }
}

/// Runs the benchmark.
pub fn run(args: AnnBench) -> anyhow::Result<()> {
    let (name, metric, base, queries) = load(&args)?;
    anyhow::ensure!(!base.is_empty() && !queries.is_empty(), "empty data set");
    eprintln!(
        "{name}: {} base vectors of {} dimensions, {} queries, {}",
        base.len(),
        base[0].len(),
        queries.len(),
        metric.name()
    );
    let started = Instant::now();
    let truth = exact(metric, &base, &queries);
    eprintln!(
        "exact neighbours in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(dir) = &args.export {
        export(dir, &args, metric, &base, &queries, &truth)?;
    }
    let graph_metric = match metric {
        Metric::L2 => quarry_index::Metric::L2,
        Metric::Cosine => quarry_index::Metric::Dot,
    };
    let (build_secs, threads, rows) = measure(graph_metric, &args, &base, &queries, &truth);
    let report = json!({
        "library": "Quarry",
        "dataset": name,
        "metric": metric.name(),
        "base": base.len(),
        "dimension": base[0].len(),
        "queries": queries.len(),
        "m": args.m,
        "ef_construction": args.ef_construction,
        "vectors": if args.int8 { "int8" } else { "f32" },
        "build_seconds": build_secs,
        "build_threads": threads,
        "runs": rows,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "Quarry on {name}: M={} ef_construction={}, {} vectors, built in {:.1} s on {threads} threads",
            args.m,
            args.ef_construction,
            if args.int8 { "int8" } else { "f32" },
            build_secs
        );
        println!("{:>6} {:>10} {:>12}", "ef", "recall@10", "queries/s");
        for r in &rows {
            println!(
                "{:>6} {:>10.4} {:>12.0}",
                r["ef"].as_u64().unwrap_or_default(),
                r["recall"].as_f64().unwrap_or_default(),
                r["qps"].as_f64().unwrap_or_default()
            );
        }
    }
    Ok(())
}

type Vectors = Vec<Vec<f32>>;

fn load(args: &AnnBench) -> anyhow::Result<(String, Metric, Vectors, Vectors)> {
    let (kind, dir) = args
        .dataset
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--dataset: expected fashion-mnist:DIR or beir:DIR"))?;
    let dir = Path::new(dir);
    match kind {
        "fashion-mnist" => {
            let base = read_idx(&find(dir, "train-images-idx3-ubyte.gz")?)?;
            let mut queries = read_idx(&find(dir, "t10k-images-idx3-ubyte.gz")?)?;
            queries.truncate(args.queries);
            Ok(("fashion-mnist-784".into(), Metric::L2, base, queries))
        }
        "beir" => {
            let corpus = super::read_texts(&dir.join("corpus.jsonl"))?;
            let mut texts = super::read_texts(&dir.join("queries.jsonl"))?;
            texts.truncate(args.queries);
            let source: ModelSource = args.model.parse()?;
            let model_dir = ModelCache::from_env().fetch(&source, &MODEL_FILES)?;
            let queue = EmbedQueue::start(&model_dir, QueueConfig::default())?;
            let mut base = Vec::with_capacity(corpus.len());
            for batch in corpus.chunks(256) {
                base.extend(queue.embed_blocking(batch.to_vec())?);
                eprint!("\rembedded {}/{} passages", base.len(), corpus.len());
            }
            eprintln!();
            let queries = queue.embed_blocking(texts)?;
            let name = dir
                .file_name()
                .map_or("beir".into(), |n| n.to_string_lossy().into_owned());
            Ok((name, Metric::Cosine, base, queries))
        }
        other => anyhow::bail!("--dataset: unknown kind {other:?} (fashion-mnist or beir)"),
    }
}

/// Finds `name` anywhere under `dir` (the Debian package nests it).
fn find(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                return Ok(path);
            }
        }
    }
    anyhow::bail!("no {name} under {}", dir.display())
}

/// Reads a gzipped IDX file of uint8 images as f32 vectors.
fn read_idx(path: &Path) -> anyhow::Result<Vectors> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut raw)?;
    let word = |i: usize| -> anyhow::Result<usize> {
        let b = raw
            .get(i * 4..i * 4 + 4)
            .ok_or_else(|| anyhow::anyhow!("{}: truncated header", path.display()))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    anyhow::ensure!(
        word(0)? == 0x0803,
        "{}: not an IDX file of uint8 images",
        path.display()
    );
    let (n, dim) = (word(1)?, word(2)? * word(3)?);
    let data = &raw[16..];
    anyhow::ensure!(
        data.len() == n * dim,
        "{}: {} bytes of pixels, expected {}",
        path.display(),
        data.len(),
        n * dim
    );
    Ok(data
        .chunks(dim)
        .map(|img| img.iter().map(|&p| p as f32).collect())
        .collect())
}

/// The exact `K` nearest base vectors of every query.
fn exact(metric: Metric, base: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<Vec<usize>> {
    queries
        .par_iter()
        .map(|q| {
            let mut d: Vec<(f32, usize)> = base
                .iter()
                .enumerate()
                .map(|(i, b)| (metric.distance(q, b), i))
                .collect();
            d.select_nth_unstable_by(K, |a, b| a.0.total_cmp(&b.0));
            d.truncate(K);
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            d.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// Recall@10 and the best queries/s over `passes` runs of `search`.
fn time_queries(
    passes: usize,
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
    search: impl Fn(&[f32]) -> Vec<usize>,
) -> (f64, f64) {
    let mut best = f64::INFINITY;
    let mut found = 0usize;
    for _ in 0..passes.max(1) {
        found = 0;
        let t = Instant::now();
        for (q, want) in queries.iter().zip(truth) {
            found += search(q).iter().filter(|id| want.contains(id)).count();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    (
        found as f64 / (queries.len() * K) as f64,
        queries.len() as f64 / best,
    )
}

fn measure(
    metric: quarry_index::Metric,
    args: &AnnBench,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
) -> (f64, usize, Vec<serde_json::Value>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let mut graph = Graph::new(metric, args.m, args.ef_construction);
    if args.int8 {
        graph = graph.quantized();
    }
    let items: Vec<(u64, &[f32])> = base
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    graph.insert(&items, threads);
    // Quarry links back points that pruning left unreachable; that is part
    // of the build.
    graph.repair();
    let build_secs = started.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for &ef in &args.ef {
        let ef_run = ef.max(K);
        let (recall, qps) = time_queries(args.passes, queries, truth, |q| {
            graph
                .search(q, K, ef_run, |_| true)
                .into_iter()
                .map(|(slot, _)| graph.id(slot) as usize)
                .collect()
        });
        rows.push(json!({ "ef": ef, "recall": recall, "qps": qps }));
    }
    (build_secs, threads, rows)
}

fn export(
    dir: &Path,
    args: &AnnBench,
    metric: Metric,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let fvecs = |name: &str, rows: &[Vec<f32>]| -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(name))?);
        for r in rows {
            out.write_all(&(r.len() as i32).to_le_bytes())?;
            for x in r {
                out.write_all(&x.to_le_bytes())?;
            }
        }
        Ok(out.flush()?)
    };
    fvecs("base.fvecs", base)?;
    fvecs("queries.fvecs", queries)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("truth.ivecs"))?);
    for r in truth {
        out.write_all(&(r.len() as i32).to_le_bytes())?;
        for &i in r {
            out.write_all(&(i as i32).to_le_bytes())?;
        }
    }
    out.flush()?;
    let params = json!({
        "metric": metric.name(),
        "m": args.m,
        "ef_construction": args.ef_construction,
        "ef": args.ef,
        "passes": args.passes,
        "k": K,
    });
    std::fs::write(dir.join("params.json"), params.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_neighbours_are_sorted_and_include_the_point_itself() {
        let base: Vectors = (0..50)
            .map(|i| vec![i as f32, (i * i % 7) as f32])
            .collect();
        let truth = exact(Metric::L2, &base, &base[..5]);
        for (i, t) in truth.iter().enumerate() {
            assert_eq!(t.len(), K);
            assert_eq!(t[0], i);
            let d: Vec<f32> = t
                .iter()
                .map(|&j| Metric::L2.distance(&base[i], &base[j]))
                .collect();
            assert!(d.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
