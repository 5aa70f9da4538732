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
