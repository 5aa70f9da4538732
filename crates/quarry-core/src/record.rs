//! Prompt/response records: what was asked, what was retrieved and what was
//! answered, kept for every Ask so that people can inspect, rate and export
//! them.
//!
//! Every field after the first few has a serde default, so records written by
//! an older build still read after fields are added.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidArgument;

/// A record's id: a number that grows with creation time, shown to clients as
/// 16 hex digits so that ids sort as text too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub u64);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for RecordId {
    type Err = InvalidArgument;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidArgument::new(
                "id",
                format!(
                    "{:?} is not a record id (16 hex digits)",
                    crate::error::capped(s, 64)
                ),
            ));
        }
        u64::from_str_radix(s, 16)
            .map(RecordId)
            .map_err(|e| InvalidArgument::new("id", e.to_string()))
    }
}

/// A retrieved passage as remembered by a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedChunk {
    /// The chunk's id.
    pub chunk_id: u64,
    /// Its document's id.
    pub document_id: String,
    /// The fused retrieval score.
    pub score: f64,
}

/// A citation marker the answer used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedCitation {
    /// The marker's number, `[n]`.
    pub number: u32,
    /// The cited chunk.
    pub chunk_id: u64,
    /// The cited document.
    pub document_id: String,
}

/// Timings of one Ask, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Embedding the question and searching.
    pub retrieve_ms: f64,
    /// Processing the prompt.
    pub prefill_ms: f64,
    /// From the call's start to the first answer token.
    pub first_token_ms: f64,
    /// The whole call.
    pub total_ms: f64,
}

/// How an Ask builds its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// The model answers from evidence sentences; every sentence is
    /// verified before it is shown, and one that fails is replaced by
    /// quoted evidence or dropped.
    #[default]
    Grounded,
    /// No model: the best evidence sentences, quoted with their passage
    /// numbers.
    Extractive,
    /// Free generation from whole passages, verified and annotated but
    /// shown as written.
    Generative,
}

impl AnswerMode {
    /// The name used in records, flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grounded => "grounded",
            Self::Extractive => "extractive",
            Self::Generative => "generative",
        }
    }

    /// Every mode.
    pub const ALL: [AnswerMode; 3] = [Self::Grounded, Self::Extractive, Self::Generative];
}

impl FromStr for AnswerMode {
    type Err = InvalidArgument;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                InvalidArgument::new(
                    "answer_mode",
                    format!(
                        "{:?} is not an answer mode (grounded, extractive, generative)",
                        crate::error::capped(s, 40)
                    ),
                )
            })
    }
}

/// What verification did with one sentence of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceStatus {
    /// Its facts are in the passages and a passage supports it: shown as
    /// written, with the supporting passage cited.
    Supported,
    /// It failed verification and was replaced by a quoted evidence
    /// sentence.
    Replaced,
    /// It failed verification and was not shown.
    Dropped,
    /// It failed verification but was shown as written (generative mode).
    Unsupported,
    /// An evidence sentence quoted verbatim: the extractive answer, or
    /// evidence added because the model's sentences lacked the fact asked
    /// for.
    Quoted,
    /// It repeated an earlier sentence and was not shown.
    Repeated,
}

impl SentenceStatus {
    /// Whether the model's sentence failed verification.
    pub fn failed(self) -> bool {
        matches!(self, Self::Replaced | Self::Dropped | Self::Unsupported)
    }
}

/// The verification of one sentence of an answer, as shown to clients and
/// kept in records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceCheck {
    /// Its place among the answer's sentences, from 0.
    pub index: u32,
    /// What the model wrote (empty for quoted evidence).
    #[serde(default)]
    pub generated: String,
    /// What was shown (empty when dropped or repeated).
    #[serde(default)]
    pub shown: String,
    /// What verification did.
    pub status: SentenceStatus,
    /// The passage numbers shown with it.
    #[serde(default)]
    pub citations: Vec<u32>,
    /// The markers the model wrote.
    #[serde(default)]
    pub written_citations: Vec<u32>,
    /// How well the best passage sentence matches it, 0 to 1.
    #[serde(default)]
    pub support: f64,
    /// The number of the passage that supports it best (0: none).
    #[serde(default)]
    pub passage: u32,
    /// Numbers and names it states that no passage holds.
    #[serde(default)]
    pub unsupported_facts: Vec<String>,
}

/// An evidence sentence an answer was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceSentence {
    /// Its passage's number.
    pub passage: u32,
    /// The sentence, verbatim.
    pub text: String,
    /// Its score against the question.
    pub score: f64,
}

/// One stored Ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's id.
    pub id: RecordId,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// The collection asked.
    pub collection: String,
    /// The question.
    pub question: String,
    /// The answer.
    #[serde(default)]
    pub answer: String,
    /// Conversation id; empty when none.
    #[serde(default)]
    pub session_id: String,
    /// Who asked; empty when auth is off.
    #[serde(default)]
    pub principal: String,
    /// The passages given to the model, in order.
    #[serde(default)]
    pub retrieved: Vec<RetrievedChunk>,
    /// The full prompt.
    #[serde(default)]
    pub prompt: String,
    /// Citations the answer used.
    #[serde(default)]
    pub citations: Vec<UsedCitation>,
    /// Generator model id.
    #[serde(default)]
    pub generator_model: String,
    /// Embedding model id.
    #[serde(default)]
    pub embedding_model: String,
    /// Generation parameters as JSON text, so that new parameters need no
    /// migration.
    #[serde(default)]
    pub generation_json: String,
    /// Prompt length in tokens.
    #[serde(default)]
    pub prompt_tokens: u32,
    /// Answer length in tokens.
    #[serde(default)]
    pub answer_tokens: u32,
    /// Timings.
    #[serde(default)]
    pub timings: Timings,
    /// Why generation stopped (the API's FinishReason name).
    #[serde(default)]
    pub finish_reason: String,
    /// The rating, if rated.
    #[serde(default)]
    pub rating: Option<i32>,
    /// The rating's comment.
    #[serde(default)]
    pub comment: String,
    /// The previous record of the same session.
    #[serde(default)]
    pub previous_record_id: Option<RecordId>,
    /// How the answer was built; records written before answer modes
    /// existed read as generative, which is what they were.
    #[serde(default = "generative")]
    pub answer_mode: AnswerMode,
    /// What the model wrote, before verification (the answer is what was
    /// shown).
    #[serde(default)]
    pub generated_answer: String,
    /// The evidence sentences, best first.
    #[serde(default)]
    pub evidence: Vec<EvidenceSentence>,
    /// The verification of every sentence.
    #[serde(default)]
    pub sentences: Vec<SentenceCheck>,
    /// The share of the model's sentences that verification supported
    /// (`None` when the model wrote none).
    #[serde(default)]
    pub supported_share: Option<f64>,
    /// Sentences replaced by quoted evidence.
    #[serde(default)]
    pub replaced_sentences: u32,
    /// Sentences dropped.
    #[serde(default)]
    pub dropped_sentences: u32,
}

fn generative() -> AnswerMode {
    AnswerMode::Generative
}

impl Record {
    /// Whether some sentence of the answer failed verification, or the
    /// answer was refused for lack of support.
    pub fn has_unsupported(&self) -> bool {
        self.finish_reason == "not_supported" || self.sentences.iter().any(|s| s.status.failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_modes_parse_and_old_records_read_as_generative() {
        for m in AnswerMode::ALL {
            assert_eq!(m.as_str().parse::<AnswerMode>().unwrap(), m);
        }
        let err = "magic".parse::<AnswerMode>().unwrap_err();
        assert_eq!(err.field, "answer_mode");
        let old = r#"{"id":1,"created_at":0,"collection":"c","question":"q"}"#;
        let r: Record = serde_json::from_str(old).unwrap();
        assert_eq!(r.answer_mode, AnswerMode::Generative);
        assert!(r.sentences.is_empty() && !r.has_unsupported());
    }

    #[test]
    fn record_ids_round_trip_through_text() {
        for n in [0u64, 1, 0xdead_beef, u64::MAX] {
            let id = RecordId(n);
            assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
        }
        assert!("xyz".parse::<RecordId>().is_err());
        assert!("000000000000000g".parse::<RecordId>().is_err());
        assert_eq!(RecordId(255).to_string(), "00000000000000ff");
    }
}
