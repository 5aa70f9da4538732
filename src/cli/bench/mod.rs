//! `quarry bench ...`: benchmarks of Quarry's own components on real data.
//! Figures for docs/performance.md come from here, never from tests.
//!
//! - [`embed`]: embedding throughput and single-query latency, in process.
//! - [`search`]: end-to-end Search latency over gRPC and REST against a real server
//!   on a large synthesised collection, and its restart time.
//! - [`ann`]: the HNSW index alone: recall@10 against exact search and
//!   queries per second at several ef_search values.
//! - [`generate`]: the decoder alone: prefill, time to first token and
//!   decode speed on a RAG-sized prompt.
//! - [`ingest`]: the bulk loader end to end beside embedding alone.
//! - [`load`]: a real server under K concurrent clients mixing Search, Ask
//!   and Upsert: latency percentiles, throughput, peak RSS, and a soak.

use std::path::Path;

pub mod ann;
pub mod embed;
pub mod generate;
pub mod ingest;
pub mod load;
pub mod search;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Embedding throughput over a corpus and single-query latency.
    Embed(embed::EmbedBench),
    /// Search latency over gRPC and REST on a large collection, and restart time.
    Search(search::SearchBench),
    /// HNSW recall@10 and queries/s at several ef_search values.
    Ann(ann::AnnBench),
    /// Decoder prefill and decode speed on a RAG-sized prompt.
    Generate(generate::GenerateBench),
    /// The bulk loader end to end beside embedding alone.
    Ingest(ingest::IngestBench),
    /// K concurrent clients mixing Search, Ask and Upsert against a real
    /// server: latency percentiles, throughput, peak RSS, and a soak.
    Load(load::LoadBench),
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Embed(args) => embed::run(args),
        BenchCommand::Search(args) => runtime.block_on(search::run(args)),
        BenchCommand::Ann(args) => ann::run(args),
        BenchCommand::Generate(args) => generate::run(args),
        BenchCommand::Ingest(args) => runtime.block_on(ingest::run(args)),
        BenchCommand::Load(args) => runtime.block_on(load::run(args)),
    }
}

/// The "text" field of every record of a JSONL file.
fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    super::eval::jsonl(path)?
        .iter()
        .enumerate()
        .map(|(n, v)| super::eval::field(v, "text", path, n))
        .collect()
}

/// A Qdrant cluster of `nodes` nodes for a benchmark (the binary of
/// `quarry::qdrant_process::qdrant_bin`), under `root`.
fn qdrant_cluster(
    nodes: usize,
    root: &Path,
) -> anyhow::Result<quarry::qdrant_process::QdrantCluster> {
    let bin = quarry::qdrant_process::qdrant_bin().ok_or_else(|| {
        anyhow::anyhow!("no Qdrant binary: set QUARRY_QDRANT_BIN (or run .ci/run, which unpacks ../shared/vendor/qdrant)")
    })?;
    eprintln!("starting {nodes} Qdrant node(s)");
    Ok(quarry::qdrant_process::QdrantCluster::start(
        &bin,
        root,
        nodes,
        std::time::Duration::from_secs(120),
    )?)
}

/// The placement a benchmark gives its collection on `nodes` Qdrant
/// nodes: a shard per node, two copies of each where there are two nodes.
fn bench_placement(nodes: usize) -> quarry_core::Placement {
    quarry_core::Placement {
        shard_number: Some(nodes as u32),
        replication_factor: Some(nodes.min(2) as u32),
        write_consistency_factor: Some(1),
    }
}

/// Resident memory of a process, in MiB (Linux `/proc`).
fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// One `/proc/PID/status` line's size, in MiB: `VmRSS:` is the sum of
/// `RssAnon:` (the process's own memory) and `RssFile:` (mapped file
/// pages, such as checkpoint vectors, which the kernel can drop and read
/// back).
fn status_mib(pid: u32, line: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(line))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 100.0);
        assert_eq!(percentile(&v, 99.0), 198.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
    }
}
