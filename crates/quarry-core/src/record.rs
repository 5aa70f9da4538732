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
                format!("{s:?} is not a record id (16 hex digits)"),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
