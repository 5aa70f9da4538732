//! `quarry eval DIR`: retrieval quality on a BEIR folder (corpus.jsonl,
//! queries.jsonl, qrels/test.tsv). Loads the corpus into a fresh collection
//! of an in-process engine (its own temporary data directory), runs every
//! judged query in each mode, and prints nDCG@10, Recall@100 and MRR@10
//! with trec_eval semantics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use quarry_core::{CollectionName, CollectionSettings, Document};
use quarry_engine::{CreateCollection, EngineConfig, Fusion, Mode, SearchRequest};
use quarry_models::{ModelCache, DEFAULT_EMBED_MODEL};
use serde_json::json;

/// `quarry eval DIR` (retrieval) or `quarry eval ask QA.jsonl` (answers).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalCommand {
    /// Answer quality instead of retrieval quality.
    #[command(subcommand)]
    pub command: Option<EvalSubcommand>,
    #[command(flatten)]
    pub retrieval: EvalArgs,
}

/// Subcommands of `quarry eval`.
#[derive(Debug, clap::Subcommand)]
pub enum EvalSubcommand {
    /// Answer quality of a running server on a QA file: facts, citations,
    /// refusals, verification, latency, per answer mode.
    Ask(super::eval_ask::EvalAskArgs),
}

/// Runs `quarry eval`.
pub async fn run_command(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd.command {
        Some(EvalSubcommand::Ask(args)) => super::eval_ask::run(args).await,
        None => run(cmd.retrieval).await,
    }
}

/// Flags of `quarry eval DIR`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.
    pub dir: Option<PathBuf>,
    /// Embedding model source.
    #[arg(long, env = "QUARRY_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL)]
    pub embed_model: String,
    /// Documents per upsert batch.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Write TREC run files (one per mode) into this folder, for checking
    /// the metrics with trec_eval or pytrec_eval.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Fusions to evaluate in HYBRID mode, comma-separated: rrf:K,
    /// wrrf:K:DENSE_WEIGHT (keyword weight 1), convex:ALPHA, dbsf:ALPHA,
    /// zscore:ALPHA, adaptive:ALPHA. The default is the server's default
    /// fusion.
    #[arg(long, default_value = "adaptive:0.7")]
    pub fusions: String,
    /// The collection's language (its keyword analyzer): en, ar, fr, ...,
    /// simple, cjk.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// The collection's vectors: none (32-bit floats) or int8 (codes
    /// searched, candidates rescored with the floats).
    #[arg(long, default_value = "none")]
    pub quantization: quarry_core::Quantization,
    /// Also evaluate each fusion with sentence-level rescoring at these
    /// weights, comma-separated (0..=1; see docs/retrieval.md).
    #[arg(long, default_value = "")]
    pub sentence_weights: String,
    /// Print, for each fusion, the queries it helps and hurts against the
    /// better of keyword and dense on this corpus (nDCG@10 per query).
    #[arg(long)]
    pub per_query: bool,
    /// Write each query's keyword and dense rankings with their raw scores
    /// (JSON lines: qid, mode, ranking of [document id, score]), for
    /// studying fusions offline.
    #[arg(long)]
    pub lists: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Evaluate on the Qdrant backend: gRPC URL(s) of the cluster
    /// (comma-separated). The corpus goes into a collection of its own
    /// (prefix `eval<PID>`), deleted at the end. Default: the embedded
    /// backend in a temporary data directory.
    #[arg(long, env = "QUARRY_QDRANT_URL", value_delimiter = ',')]
    pub qdrant_url: Vec<String>,
}

/// Parses one `--fusions` entry.
pub fn parse_fusion(spec: &str) -> anyhow::Result<Fusion> {
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |i: usize| -> anyhow::Result<f32> {
        parts
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("fusion {spec:?} lacks a parameter"))?
            .parse::<f32>()
            .map_err(|e| anyhow::anyhow!("fusion {spec:?}: {e}"))
    };
    Ok(match parts[0] {
        "rrf" => Fusion::Rrf {
            k: num(1)?,
            dense_weight: 1.0,
            keyword_weight: 1.0,
        },
        "wrrf" => Fusion::Rrf {
            k: num(1)?,
            dense_weight: num(2)?,
            keyword_weight: 1.0,
        },
        "convex" => Fusion::Convex { alpha: num(1)? },
        "dbsf" => Fusion::Dbsf { alpha: num(1)? },
        "zscore" => Fusion::Zscore { alpha: num(1)? },
        // The engine sets the coverage of each query.
        "adaptive" => Fusion::Adaptive {
            alpha: num(1)?,
            coverage: 1.0,
        },
        other => {
            anyhow::bail!("unknown fusion {other:?} (rrf, wrrf, convex, dbsf, zscore, adaptive)")
        }
    })
}

/// Graded judgments: query id -> document id -> grade.
pub type Qrels = HashMap<String, HashMap<String, i64>>;

/// Every record of a JSONL file (blank lines skipped), naming file:line on errors.
pub fn jsonl(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: invalid JSON", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

/// A record's string (or number) field; a missing title is empty.
pub fn field(v: &serde_json::Value, name: &str, path: &Path, n: usize) -> anyhow::Result<String> {
    match &v[name] {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(x) => Ok(x.to_string()),
        serde_json::Value::Null if name == "title" => Ok(String::new()),
        other => anyhow::bail!(
            "{}: record {} has no string {name:?} ({other})",
            path.display(),
            n + 1
        ),
    }
}

/// Reads a qrels TSV, with or without the BEIR header line.
pub fn read_qrels(text: &str) -> anyhow::Result<Qrels> {
    let mut qrels: Qrels = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if line.trim().is_empty() {
            continue;
        }
        anyhow::ensure!(
            cols.len() >= 3,
            "qrels line {}: expected query-id, corpus-id, score",
            n + 1
        );
        let Ok(grade) = cols[2].trim().parse::<i64>() else {
            anyhow::ensure!(
                n == 0,
                "qrels line {}: score {:?} is not an integer",
                n + 1,
                cols[2]
            );
            continue; // the header
        };
        qrels
            .entry(cols[0].to_owned())
            .or_default()
            .insert(cols[1].to_owned(), grade);
    }
    Ok(qrels)
}

/// nDCG@k with graded gains (trec_eval's ndcg_cut: gain = grade,
/// discount log2(rank + 1), ideal ranking from every judged document).
pub fn ndcg_at(ranking: &[String], judged: &HashMap<String, i64>, k: usize) -> f64 {
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| judged.get(d).copied().unwrap_or(0).max(0) as f64 / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<i64> = judged.values().copied().filter(|g| *g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| *g as f64 / (i as f64 + 2.0).log2())
        .sum();
    if idcg > 0.0 {
        dcg / idcg
    } else {
        0.0
    }
}

/// Recall@k: relevant (grade > 0) documents in the top k over all relevant.
pub fn recall_at(ranking: &[String], judged: &HashMap<String, i64>, k: usize) -> f64 {
    let relevant = judged.values().filter(|g| **g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|d| judged.get(*d).is_some_and(|g| *g > 0))
        .count();
    found as f64 / relevant as f64
}

/// MRR@k: 1 / rank of the first relevant document within the top k.
pub fn mrr_at(ranking: &[String], judged: &HashMap<String, i64>, k: usize) -> f64 {
    ranking
        .iter()
        .take(k)
        .position(|d| judged.get(d).is_some_and(|g| *g > 0))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Runs `quarry eval`.
pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .clone()
        .context("name a BEIR folder (quarry eval DIR) or a QA file (quarry eval ask QA.jsonl)")?;
    let corpus_path = dir.join("corpus.jsonl");
    let queries_path = dir.join("queries.jsonl");
    let qrels_path = dir.join("qrels/test.tsv");
    let qrels = read_qrels(
        &std::fs::read_to_string(&qrels_path)
            .with_context(|| format!("read {}", qrels_path.display()))?,
    )?;
    let mut documents = Vec::new();
    for (n, v) in jsonl(&corpus_path)?.iter().enumerate() {
        documents.push(Document {
            id: field(v, "_id", &corpus_path, n)?,
            title: field(v, "title", &corpus_path, n)?,
            text: field(v, "text", &corpus_path, n)?,
            metadata: Default::default(),
        });
    }
    let mut queries = Vec::new();
    for (n, v) in jsonl(&queries_path)?.iter().enumerate() {
        queries.push((
            field(v, "_id", &queries_path, n)?,
            field(v, "text", &queries_path, n)?,
        ));
    }
    let judged: Vec<&(String, String)> = queries
        .iter()
        .filter(|(id, _)| qrels.get(id).is_some_and(|j| j.values().any(|g| *g > 0)))
        .collect();

    let data_dir = tempfile::Builder::new().prefix("quarry-eval-").tempdir()?;
    let engine_dir = data_dir.path().to_path_buf();
    let embed_model = args.embed_model.parse()?;
    let backend = if args.qdrant_url.is_empty() {
        quarry::config::Backend::Embedded
    } else {
        let mut q = quarry_qdrant::QdrantConfig::new(args.qdrant_url.clone());
        q.prefix = format!("eval{}", std::process::id());
        eprintln!("backend: Qdrant at {}", args.qdrant_url.join(", "));
        quarry::config::Backend::Qdrant(q)
    };
    let on_qdrant = !args.qdrant_url.is_empty();
    let engine = tokio::task::spawn_blocking(move || {
        crate::serve::open_engine_on(
            EngineConfig::retrieval_only(engine_dir, ModelCache::from_env(), embed_model),
            backend,
        )
    })
    .await??;
    let name = CollectionName::parse("eval")?;
    engine
        .create_collection(CreateCollection {
            name: name.clone(),
            settings: CollectionSettings {
                language: args.language.parse()?,
                quantization: args.quantization,
                ..CollectionSettings::default()
            },
            placement: Default::default(),
        })
        .await?;

    let started = Instant::now();
    let total = documents.len();
    let mut loaded = 0;
    for batch in documents.chunks(args.batch.max(1)) {
        engine
            .upsert_documents(name.clone(), batch.to_vec())
            .await?;
        loaded += batch.len();
        if loaded % (args.batch * 10).max(1) < args.batch || loaded == total {
            eprintln!(
                "loaded {loaded}/{total} documents ({:.0}/s)",
                loaded as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let load_secs = started.elapsed().as_secs_f64();

    let mut runs: Vec<(String, Mode, Fusion, f32)> = vec![
        (
            "keyword".into(),
            Mode::Keyword,
            Fusion::Convex { alpha: 0.0 },
            0.0,
        ),
        (
            "dense".into(),
            Mode::Dense,
            Fusion::Convex { alpha: 1.0 },
            0.0,
        ),
    ];
    let weights: Vec<f32> = args
        .sentence_weights
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|w| {
            w.parse::<f32>()
                .with_context(|| format!("--sentence-weights: {w:?} is not a number"))
        })
        .collect::<anyhow::Result<_>>()?;
    let specs: Vec<&str> = args
        .fusions
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for spec in &specs {
        let label = if specs.len() == 1 {
            "hybrid".to_owned()
        } else {
            format!("hybrid-{spec}")
        };
        let fusion = parse_fusion(spec)?;
        for &w in &weights {
            runs.push((format!("{label}+sentences:{w}"), Mode::Hybrid, fusion, w));
        }
        runs.push((label, Mode::Hybrid, fusion, 0.0));
    }
    let mut results = BTreeMap::new();
    let mut per_query: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut lists = match &args.lists {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => None,
    };
    for (label, mode, fusion, sentence_weight) in runs {
        let mut run_file = match &args.run_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Some(std::io::BufWriter::new(std::fs::File::create(
                    dir.join(format!("{label}.run")),
                )?))
            }
            None => None,
        };
        let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
        let started = Instant::now();
        for (qid, text) in &judged {
            let hits = engine
                .search(SearchRequest {
                    collection: name.clone(),
                    query: text.clone(),
                    top_k: 100,
                    mode,
                    filter: None,
                    fusion,
                    sentence_weight,
                })
                .await?;
            // Documents, not chunks: a document ranks where its best chunk does.
            let mut seen = HashSet::new();
            let ranking: Vec<(String, f64)> = hits
                .into_iter()
                .filter(|h| seen.insert(h.document_id.clone()))
                .map(|h| (h.document_id, h.score))
                .collect();
            if let Some(f) = run_file.as_mut() {
                // trec_eval orders a run by score and breaks ties by document
                // id, not by rank; fused scores tie often (RRF), so the score
                // column is derived from Quarry's rank to make trec_eval
                // evaluate exactly the ranking Quarry returned.
                let n = ranking.len();
                for (rank, (doc, _score)) in ranking.iter().enumerate() {
                    writeln!(f, "{qid} Q0 {doc} {} {} quarry-{label}", rank + 1, n - rank)?;
                }
            }
            if let (Some(f), Mode::Dense | Mode::Keyword) = (lists.as_mut(), mode) {
                serde_json::to_writer(
                    &mut *f,
                    &json!({"qid": qid, "mode": label, "ranking": ranking}),
                )?;
                f.write_all(b"\n")?;
            }
            let ids: Vec<String> = ranking.into_iter().map(|(d, _)| d).collect();
            let j = &qrels[qid.as_str()];
            let q_ndcg = ndcg_at(&ids, j, 10);
            per_query.entry(label.clone()).or_default().push(q_ndcg);
            ndcg += q_ndcg;
            recall += recall_at(&ids, j, 100);
            mrr += mrr_at(&ids, j, 10);
        }
        let n = judged.len().max(1) as f64;
        results.insert(
            label.clone(),
            json!({
                "ndcg@10": ndcg / n,
                "recall@100": recall / n,
                "mrr@10": mrr / n,
                "ms_per_query": started.elapsed().as_secs_f64() * 1000.0 / n,
            }),
        );
    }

    if let Some(mut f) = lists {
        f.flush()?;
    }
    let views = per_query_views(&per_query);
    let report = json!({
        "per_query": if args.per_query { json!(views) } else { serde_json::Value::Null },
        "dataset": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        "documents": total,
        "queries": queries.len(),
        "scored_queries": judged.len(),
        "load_seconds": load_secs,
        "fusions": args.fusions,
        "results": results,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{}: {} documents (loaded in {:.1} s), {} queries, {} scored (with relevant judgments)",
            report["dataset"].as_str().unwrap_or("?"),
            total,
            load_secs,
            queries.len(),
            judged.len()
        );
        println!(
            "{:<20} {:>8} {:>11} {:>8} {:>9}",
            "mode", "nDCG@10", "Recall@100", "MRR@10", "ms/query"
        );
        for (label, r) in &results {
            println!(
                "{:<20} {:>8.4} {:>11.4} {:>8.4} {:>9.1}",
                label,
                r["ndcg@10"].as_f64().unwrap_or_default(),
                r["recall@100"].as_f64().unwrap_or_default(),
                r["mrr@10"].as_f64().unwrap_or_default(),
                r["ms_per_query"].as_f64().unwrap_or_default()
            );
        }
        if args.per_query {
            println!(
                "\nper query, against {} (the better half here) and against the better half of each query:",
                views.first().map_or("-", |v| v.baseline.as_str())
            );
            println!(
                "{:<20} {:>6} {:>6} {:>6} {:>13} {:>11}",
                "fusion", "helps", "hurts", "ties", "worst loss", "vs oracle"
            );
            for v in &views {
                println!(
                    "{:<20} {:>6} {:>6} {:>6} {:>13.4} {:>11.4}",
                    v.fusion, v.helps, v.hurts, v.ties, v.worst_loss, v.below_oracle
                );
            }
        }
    }
    if on_qdrant {
        // The corpus was only for this run.
        engine.delete_collection(name).await?;
    }
    engine.flush()?;
    Ok(())
}

/// How one fusion does query by query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PerQueryView {
    /// The fusion's run label.
    pub fusion: String,
    /// The better of keyword and dense on this corpus (mean nDCG@10).
    pub baseline: String,
    /// Queries whose nDCG@10 the fusion raises above the baseline's.
    pub helps: usize,
    /// Queries it lowers.
    pub hurts: usize,
    /// Queries it leaves equal.
    pub ties: usize,
    /// The largest drop below the baseline on one query.
    pub worst_loss: f64,
    /// Mean nDCG@10 below max(keyword, dense) taken per query.
    pub below_oracle: f64,
}

/// The per-query views of every hybrid run against the better half.
pub fn per_query_views(per_query: &BTreeMap<String, Vec<f64>>) -> Vec<PerQueryView> {
    let (Some(keyword), Some(dense)) = (per_query.get("keyword"), per_query.get("dense")) else {
        return Vec::new();
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (baseline, base) = if mean(dense) >= mean(keyword) {
        ("dense", dense)
    } else {
        ("keyword", keyword)
    };
    per_query
        .iter()
        .filter(|(label, _)| label.starts_with("hybrid"))
        .map(|(label, v)| {
            let (mut helps, mut hurts, mut ties, mut worst) = (0, 0, 0, 0f64);
            let mut oracle_gap = 0.0;
            for (i, x) in v.iter().enumerate() {
                let b = base[i];
                if *x > b + 1e-9 {
                    helps += 1;
                } else if *x < b - 1e-9 {
                    hurts += 1;
                    worst = worst.max(b - x);
                } else {
                    ties += 1;
                }
                oracle_gap += keyword[i].max(dense[i]) - x;
            }
            PerQueryView {
                fusion: label.clone(),
                baseline: baseline.to_owned(),
                helps,
                hurts,
                ties,
                worst_loss: worst,
                below_oracle: oracle_gap / v.len().max(1) as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn ranking(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_follow_trec_eval() {
        let j = judged(&[("a", 3), ("b", 1), ("c", 0)]);
        assert!((ndcg_at(&ranking(&["a", "b"]), &j, 10) - 1.0).abs() < 1e-12);
        // b first, a second: (1/log2(2) + 3/log2(3)) / (3/log2(2) + 1/log2(3)).
        let want = (1.0 + 3.0 / 3f64.log2()) / (3.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&ranking(&["b", "a"]), &j, 10) - want).abs() < 1e-12);
        assert_eq!(ndcg_at(&ranking(&["c", "x"]), &j, 10), 0.0);
        assert_eq!(recall_at(&ranking(&["x", "b"]), &j, 100), 0.5);
        assert_eq!(mrr_at(&ranking(&["c", "x", "b"]), &j, 10), 1.0 / 3.0);
        assert_eq!(mrr_at(&ranking(&["c", "x", "b"]), &j, 2), 0.0);
    }

    #[test]
    fn fusion_specs_parse() {
        assert_eq!(
            parse_fusion("rrf:60").unwrap(),
            Fusion::Rrf {
                k: 60.0,
                dense_weight: 1.0,
                keyword_weight: 1.0
            }
        );
        assert_eq!(
            parse_fusion("wrrf:60:2").unwrap(),
            Fusion::Rrf {
                k: 60.0,
                dense_weight: 2.0,
                keyword_weight: 1.0
            }
        );
        assert_eq!(
            parse_fusion("convex:0.7").unwrap(),
            Fusion::Convex { alpha: 0.7 }
        );
        assert!(parse_fusion("convex").is_err());
        assert!(parse_fusion("magic:1").is_err());
    }

    #[test]
    fn per_query_views_count_helps_and_hurts_against_the_better_half() {
        let mut runs = BTreeMap::new();
        runs.insert("keyword".to_owned(), vec![0.2, 0.9, 0.0]);
        runs.insert("dense".to_owned(), vec![0.5, 0.5, 0.5]);
        runs.insert("hybrid".to_owned(), vec![0.6, 0.4, 0.5]);
        let v = per_query_views(&runs);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].baseline, "dense");
        assert_eq!((v[0].helps, v[0].hurts, v[0].ties), (1, 1, 1));
        assert!((v[0].worst_loss - 0.1).abs() < 1e-12);
        // Per query the better half is 0.5, 0.9, 0.5.
        assert!((v[0].below_oracle - (-0.1 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn qrels_read_with_or_without_a_header() {
        let with = read_qrels("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n").unwrap();
        let without = read_qrels("q1\td1\t2\nq1\td2\t0\n").unwrap();
        assert_eq!(with, without);
        assert_eq!(with["q1"]["d1"], 2);
        assert!(read_qrels("q1\td1\t2\nq2\td2\tx\n").is_err());
    }
}
