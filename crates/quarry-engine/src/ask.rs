//! The Ask API's types: requests and their validation, limits and
//! defaults, and the events of the answer stream. The flow itself is in
//! [`crate::answer`].

use std::time::{Duration, Instant};

use quarry_core::{
    AnswerMode, CollectionName, Filter, InvalidArgument, RecordId, SentenceCheck, Timings,
    UsedCitation,
};
use quarry_generate::SamplingParams;
use quarry_index::Mode;

use crate::grounding::GroundingConfig;

/// The answer when nothing relevant was retrieved; the model is not run.
pub const NOT_FOUND_ANSWER: &str =
    "I could not find anything about this in the collection, so I cannot answer it.";

/// The instructions every grounded prompt starts with.
pub const SYSTEM_PROMPT: &str =
    "You answer questions using only the numbered passages the user gives. \
Cite the passage each fact comes from by its number in square brackets, like [1]. \
If the passages do not contain the answer, say that you cannot find it in the collection. \
Answer briefly.";

/// Limits and defaults of Ask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AskConfig {
    /// Passages retrieved when the request says 0.
    pub default_top_k: usize,
    /// Most passages a request may ask for.
    pub max_top_k: usize,
    /// Longest question, in bytes.
    pub max_question_bytes: usize,
    /// A passage goes to the model only when its cosine similarity to the
    /// question reaches this; with none left, the answer is
    /// [`NOT_FOUND_ANSWER`].
    pub min_similarity: f32,
    /// Tokens of earlier turns of the session kept in the prompt.
    pub history_tokens: usize,
    /// Tokens generated when the request does not say.
    pub default_max_new_tokens: usize,
    /// Most tokens a request may ask for.
    pub max_new_tokens: usize,
    /// Characters of each passage shown in a citation's snippet.
    pub snippet_chars: usize,
    /// Store records with e-mail addresses, card and phone numbers
    /// replaced ([`crate::redact`]).
    pub redact_records: bool,
    /// Evidence selection and verification.
    pub grounding: GroundingConfig,
}

impl Default for AskConfig {
    fn default() -> Self {
        Self {
            default_top_k: 5,
            max_top_k: 100,
            max_question_bytes: 4096,
            min_similarity: 0.3,
            history_tokens: 512,
            default_max_new_tokens: 256,
            max_new_tokens: 1024,
            snippet_chars: 240,
            redact_records: false,
            grounding: GroundingConfig::default(),
        }
    }
}

/// Generation settings of one Ask; `None` takes the server's default
/// (greedy decoding, [`AskConfig::default_max_new_tokens`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOptions {
    /// Most tokens to generate.
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f32>,
    /// Top-k filter (0 = off).
    pub top_k: Option<usize>,
    /// Nucleus filter (1 = off).
    pub top_p: Option<f32>,
    /// Repetition penalty (1 = off).
    pub repetition_penalty: Option<f32>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
}

/// An Ask (fields as in the API).
#[derive(Debug, Clone, PartialEq)]
pub struct AskRequest {
    /// The collection.
    pub collection: CollectionName,
    /// The question.
    pub question: String,
    /// The conversation, if any.
    pub session_id: Option<String>,
    /// Earlier turns given by the client (question, answer), oldest first,
    /// instead of a session's records.
    pub history: Vec<(String, String)>,
    /// Passages to retrieve; 0 means the default.
    pub top_k: usize,
    /// Metadata filter.
    pub filter: Option<Filter>,
    /// Retrievers.
    pub mode: Mode,
    /// Generation settings.
    pub generation: GenerationOptions,
    /// How the answer is built.
    pub answer_mode: AnswerMode,
    /// Who asks (empty when auth is off).
    pub principal: String,
    /// When the client stops waiting (its gRPC deadline): generation stops
    /// there and the record says cancelled.
    pub deadline: Option<Instant>,
}

/// A passage given to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    /// Its marker number.
    pub number: u32,
    /// The chunk.
    pub chunk_id: u64,
    /// The document.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// The start of the passage.
    pub snippet: String,
    /// Fused score.
    pub score: f64,
    /// Cosine similarity to the question.
    pub dense_score: Option<f64>,
    /// BM25 score, when the keyword retriever found it.
    pub keyword_score: Option<f64>,
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskFinish {
    /// The model ended its turn.
    Stop,
    /// max_new_tokens was reached.
    Length,
    /// A stop sequence appeared.
    StopSequence,
    /// Nothing relevant was retrieved; the fixed answer was given.
    NoContext,
    /// Passages were retrieved but none supports an answer; the fixed
    /// answer was given.
    NotSupported,
    /// The client went away.
    Cancelled,
    /// The generator failed (logged); the answer is what was produced.
    Failed,
}

impl AskFinish {
    /// The name stored in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::StopSequence => "stop_sequence",
            Self::NoContext => "no_context",
            Self::NotSupported => "not_supported",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// The value for a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Stop,
            Self::Length,
            Self::StopSequence,
            Self::NoContext,
            Self::NotSupported,
            Self::Cancelled,
            Self::Failed,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// The last event of an Ask.
#[derive(Debug, Clone, PartialEq)]
pub struct AskDone {
    /// The stored record.
    pub record_id: RecordId,
    /// Why the answer ended.
    pub finish: AskFinish,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Answer tokens.
    pub answer_tokens: u32,
    /// Timings.
    pub timings: Timings,
    /// The citations the answer used.
    pub used: Vec<UsedCitation>,
    /// Markers that pointed at no given passage.
    pub invalid_citations: u32,
    /// The generator's id (empty when no model ran).
    pub model: String,
    /// How the answer was built.
    pub answer_mode: AnswerMode,
    /// The share of the model's sentences that verification supported
    /// (`None` when the model wrote none).
    pub supported_share: Option<f64>,
    /// Sentences replaced by quoted evidence.
    pub replaced_sentences: u32,
    /// Sentences dropped.
    pub dropped_sentences: u32,
}

/// A piece of the answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delta {
    /// Text to append.
    pub text: String,
    /// When the delta is one verified sentence: the passages cited.
    pub citations: Vec<u32>,
    /// When the delta is one verified sentence: its support score.
    pub support: Option<f64>,
}

impl Delta {
    /// Raw text, not a verified sentence.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// One event of an Ask's stream, in order: `Citations` once, then
/// `Delta`s and `Check`s, `Done` once.
#[derive(Debug, Clone, PartialEq)]
pub enum AskEvent {
    /// The passages given to the model.
    Citations(Vec<Citation>),
    /// More answer text.
    Delta(Delta),
    /// The verification of a sentence.
    Check(SentenceCheck),
    /// The end.
    Done(AskDone),
}

fn valid_session_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Most earlier turns an Ask may carry.
pub const MAX_HISTORY_TURNS: usize = 64;
/// Longest question or answer of an earlier turn, in bytes.
pub const MAX_TURN_BYTES: usize = 16 * 1024;

pub(crate) fn validate(req: &AskRequest, cfg: &AskConfig) -> Result<(), InvalidArgument> {
    InvalidArgument::check_text("question", &req.question, cfg.max_question_bytes)?;
    if let Some(s) = &req.session_id {
        if !valid_session_id(s) {
            return Err(InvalidArgument::new(
                "session_id",
                "must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'",
            ));
        }
    }
    if !req.history.is_empty() && req.session_id.is_some() {
        return Err(InvalidArgument::new(
            "history",
            "give session_id or history, not both",
        ));
    }
    if req.history.len() > MAX_HISTORY_TURNS {
        return Err(InvalidArgument::new(
            "history",
            format!(
                "has {} turns; the limit is {MAX_HISTORY_TURNS}",
                req.history.len()
            ),
        ));
    }
    for (i, (q, a)) in req.history.iter().enumerate() {
        for (field, text) in [("question", q), ("answer", a)] {
            if text.len() > MAX_TURN_BYTES || text.contains('\0') {
                return Err(InvalidArgument::new(
                    format!("history[{i}].{field}"),
                    format!("must be text of at most {MAX_TURN_BYTES} bytes"),
                ));
            }
        }
    }
    if req.top_k > cfg.max_top_k {
        return Err(InvalidArgument::new(
            "top_k",
            format!("is {}; the limit is {}", req.top_k, cfg.max_top_k),
        ));
    }
    if let Some(n) = req.generation.max_new_tokens {
        if n == 0 || n > cfg.max_new_tokens {
            return Err(InvalidArgument::new(
                "generation.max_new_tokens",
                format!("is {n}; allowed range is 1..={}", cfg.max_new_tokens),
            ));
        }
    }
    if let Some(f) = &req.filter {
        f.validate("filter")?;
    }
    Ok(())
}

/// The sampling parameters of a request over the server's defaults.
pub fn sampling_params(
    g: &GenerationOptions,
    cfg: &AskConfig,
) -> Result<SamplingParams, InvalidArgument> {
    let d = SamplingParams::default();
    let params = SamplingParams {
        temperature: g.temperature.unwrap_or(0.0),
        top_k: g.top_k.unwrap_or(d.top_k),
        top_p: g.top_p.unwrap_or(d.top_p),
        repetition_penalty: g.repetition_penalty.unwrap_or(d.repetition_penalty),
        seed: g.seed.unwrap_or(d.seed),
        max_new_tokens: g.max_new_tokens.unwrap_or(cfg.default_max_new_tokens),
        stop: g.stop.clone(),
    };
    params.validate("generation.")?;
    Ok(params)
}

pub(crate) fn params_json(p: &SamplingParams) -> String {
    serde_json::json!({
        "temperature": p.temperature,
        "top_k": p.top_k,
        "top_p": p.top_p,
        "repetition_penalty": p.repetition_penalty,
        "seed": p.seed,
        "max_new_tokens": p.max_new_tokens,
        "stop": p.stop,
    })
    .to_string()
}

pub(crate) fn snippet(text: &str, chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_names_round_trip() {
        for f in [
            AskFinish::Stop,
            AskFinish::Length,
            AskFinish::StopSequence,
            AskFinish::NoContext,
            AskFinish::NotSupported,
            AskFinish::Cancelled,
            AskFinish::Failed,
        ] {
            assert_eq!(AskFinish::parse(f.as_str()), Some(f));
        }
        assert_eq!(AskFinish::parse("nope"), None);
    }

    #[test]
    fn session_ids_and_snippets() {
        assert!(valid_session_id("user-1:chat.2_b"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("has space"));
        assert!(!valid_session_id(&"x".repeat(129)));
        assert_eq!(snippet("  short  ", 10), "short");
        assert_eq!(snippet("ééééé", 3), "ééé…");
    }
}
