//! `quarry bench generate`: the decoder alone on a RAG-sized prompt: prefill
//! tokens/s, time to first token, and decode tokens/s, in process.
//!
//! The prompt is the model's chat template around five passages of a BEIR
//! corpus and one of its questions (about 800 tokens with msmarco-5k).
//! `--export` writes the prompt's token ids so that scripts/bench_generate.sh
//! can time llama.cpp on exactly the same tokens in the same run.
//!
//! `--parallel 1,4,8,16` also times decoding several sequences together
//! (the generation thread's continuous batching: one pass over the
//! weights per step for all of them), each continuing the prompt from a
//! copy of its cache, and reports the aggregate decode tokens/s.

use std::path::PathBuf;
use std::time::Instant;

use quarry_generate::llama::BatchStep;
use quarry_generate::{argmax, ChatTemplate, KvCache, LlamaModel, Message, ModelFormat};
use quarry_models::{ModelCache, ModelSource, DEFAULT_GENERATE_MODEL};
use serde_json::json;

/// Flags of `quarry bench generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateBench {
    /// BEIR folder: the first --passages passages of corpus.jsonl and the
    /// first query of queries.jsonl make the prompt.
    #[arg(long)]
    pub data: PathBuf,
    /// Passages in the prompt.
    #[arg(long, default_value_t = 5)]
    pub passages: usize,
    /// Tokens to decode after the prompt (end-of-turn is not honoured, so
    /// that every run decodes the same count).
    #[arg(long, default_value_t = 128)]
    pub decode: usize,
    /// Runs; the best counts.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Generation model source.
    #[arg(long, env = "QUARRY_GENERATE_MODEL", default_value = DEFAULT_GENERATE_MODEL)]
    pub model: String,
    /// Write the prompt's token ids (JSON) here.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Concurrent sequences to time decoding together (aggregate tokens/s),
    /// one run per value; 0 values: none.
    #[arg(long, value_delimiter = ',')]
    pub parallel: Vec<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub fn run(args: GenerateBench) -> anyhow::Result<()> {
    let source: ModelSource = args.model.parse()?;
    let path = quarry_generate::fetch_generator(&ModelCache::from_env(), &source)?;
    let format = ModelFormat::detect(&path)?;
    let vocab = format.vocab()?;
    let model = LlamaModel::load(&path)?;
    // The file itself for GGUF (the JSON names it), else the folder.
    let path = match format {
        ModelFormat::Gguf(file) => file,
        ModelFormat::Safetensors(dir) => dir,
    };

    let corpus = super::read_texts(&args.data.join("corpus.jsonl"))?;
    let queries = super::read_texts(&args.data.join("queries.jsonl"))?;
    anyhow::ensure!(
        !queries.is_empty() && corpus.len() >= args.passages,
        "{} needs {} passages and a query",
        args.data.display(),
        args.passages
    );
    let context: String = corpus[..args.passages]
        .iter()
        .enumerate()
        .map(|(i, p)| format!("[{}] {p}\n", i + 1))
        .collect();
    let user = format!(
        "Answer the question from the passages below and cite them by number.\n\n{context}\nQuestion: {}",
        queries[0]
    );
    let template = vocab
        .chat_template
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("{} has no chat template", path.display()))?;
    let bos = vocab.bos.as_ref().map_or("", |(_, t)| t.as_str());
    let eos = vocab.eos.as_ref().map_or("", |(_, t)| t.as_str());
    let prompt =
        ChatTemplate::new(template, bos, eos)?.render(&[Message::new("user", user)], true)?;
    let ids: Vec<u32> = vocab
        .tokenizer
        .encode(prompt.as_str(), false)
        .map_err(|e| anyhow::anyhow!("tokenizing the prompt: {e}"))?
        .get_ids()
        .to_vec();
    if let Some(out) = &args.export {
        std::fs::write(
            out,
            json!({ "prompt_ids": ids, "decode": args.decode, "parallel": args.parallel })
                .to_string(),
        )?;
    }

    let (mut best_prefill, mut best_decode, mut best_ttft) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut text = String::new();
    for _ in 0..args.runs.max(1) {
        let mut cache = model.new_cache(ids.len() + args.decode);
        let started = Instant::now();
        let logits = model.forward(&ids, &mut cache, true)?.unwrap_or_default();
        let mut next = argmax(&logits);
        let prefill = started.elapsed().as_secs_f64();
        best_prefill = best_prefill.min(prefill);
        best_ttft = best_ttft.min(prefill);
        let mut out = vec![next];
        let started = Instant::now();
        for _ in 1..args.decode {
            let logits = model
                .forward(&[next], &mut cache, true)?
                .unwrap_or_default();
            next = argmax(&logits);
            out.push(next);
        }
        best_decode = best_decode.min(started.elapsed().as_secs_f64());
        text = vocab.tokenizer.decode(&out, false).unwrap_or_default();
    }
    let decode_steps = args.decode.saturating_sub(1).max(1);
    let parallel = parallel_decode(&model, &ids, &args)?;
    let report = json!({
        "implementation": "quarry",
        "model": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "threads": LlamaModel::threads(),
        "prompt_tokens": ids.len(),
        "prefill_seconds": best_prefill,
        "prefill_tokens_per_second": ids.len() as f64 / best_prefill,
        "time_to_first_token_seconds": best_ttft,
        "decode_tokens": decode_steps,
        "decode_tokens_per_second": decode_steps as f64 / best_decode,
        "sample": text.chars().take(200).collect::<String>(),
        "parallel": parallel,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "quarry on {}: {} prompt tokens, {} threads",
            report["model"].as_str().unwrap_or_default(),
            ids.len(),
            LlamaModel::threads()
        );
        println!(
            "prefill {:.1} tokens/s, time to first token {:.3} s, decode {:.1} tokens/s (best of {})",
            ids.len() as f64 / best_prefill,
            best_ttft,
            decode_steps as f64 / best_decode,
            args.runs.max(1)
        );
        for p in &parallel {
            println!(
                "{} sequences: decode {:.1} tokens/s together ({:.1} each)",
                p["sequences"],
                p["decode_tokens_per_second"].as_f64().unwrap_or_default(),
                p["per_sequence_tokens_per_second"]
                    .as_f64()
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// For each `--parallel` count: that many sequences, each from a copy of
/// the prompt's cache, decoded together for `--decode` steps (best of
/// `--runs`).
fn parallel_decode(
    model: &LlamaModel,
    ids: &[u32],
    args: &GenerateBench,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if args.parallel.is_empty() {
        return Ok(Vec::new());
    }
    let mut prompt_cache = model.new_cache(ids.len() + args.decode);
    let logits = model
        .forward(ids, &mut prompt_cache, true)?
        .unwrap_or_default();
    let first = argmax(&logits);
    let steps = args.decode.saturating_sub(1).max(1);
    let mut out = Vec::new();
    for &n in &args.parallel {
        anyhow::ensure!(n > 0, "--parallel counts must be above 0");
        let mut best = f64::INFINITY;
        for _ in 0..args.runs.max(1) {
            let mut caches: Vec<KvCache> = (0..n).map(|_| prompt_cache.clone()).collect();
            let mut next = vec![first; n];
            let started = Instant::now();
            for _ in 0..steps {
                let mut batch: Vec<BatchStep<'_>> = caches
                    .iter_mut()
                    .zip(&next)
                    .map(|(cache, t)| BatchStep {
                        tokens: std::slice::from_ref(t),
                        cache,
                        logits: true,
                    })
                    .collect();
                let logits = model.forward_batch(&mut batch)?;
                for (t, l) in next.iter_mut().zip(logits) {
                    *t = argmax(&l.unwrap_or_default());
                }
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        let total = (n * steps) as f64 / best;
        out.push(json!({
            "sequences": n,
            "decode_tokens": steps,
            "decode_seconds": best,
            "decode_tokens_per_second": total,
            "per_sequence_tokens_per_second": total / n as f64,
        }));
    }
    Ok(out)
}
