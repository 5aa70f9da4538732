//! The Request limits section: what one request may carry; checked into
//! the engine's [`DocumentLimits`] and [`SearchLimits`] (Ask takes its
//! question and top-k limits from here too).

use quarry_engine::{AskConfig, DocumentLimits, SearchLimits};
use serde::Deserialize;

use super::{in_range, section, ConfigError};

section! {
/// `quarry serve` settings: limits on what one request may carry.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Request limits")]
pub struct LimitArgs {
    /// Most documents in one Upsert request or BulkIngest message
    /// (1-100000). [default: 1000]
    #[arg(long, env = "QUARRY_MAX_DOCUMENTS_PER_REQUEST")]
    pub max_documents_per_request: Option<usize>,

    /// Longest document text, in bytes (1 KiB-64 MiB, and below
    /// --max-message-bytes). [default: 4194304]
    #[arg(long, env = "QUARRY_MAX_DOCUMENT_BYTES")]
    pub max_document_bytes: Option<usize>,

    /// Most hits a Search, or passages an Ask, may ask for (1-1000).
    /// [default: 100]
    #[arg(long, env = "QUARRY_MAX_TOP_K")]
    pub max_top_k: Option<usize>,

    /// Longest question or search query, in bytes (16-1048576).
    /// [default: 4096]
    #[arg(long, env = "QUARRY_MAX_QUESTION_BYTES")]
    pub max_question_bytes: Option<usize>,
}
}

/// The Request limits section, checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub documents: DocumentLimits,
    pub search: SearchLimits,
    pub max_question_bytes: usize,
    pub max_top_k: usize,
}

impl LimitArgs {
    /// `max_message_bytes`: a document must fit in a message.
    pub(super) fn resolve(self, max_message_bytes: usize) -> Result<Limits, ConfigError> {
        let max_top_k = in_range(
            "--max-top-k",
            self.max_top_k,
            SearchLimits::default().max_top_k,
            1..=1000,
        )?;
        let max_question_bytes = in_range(
            "--max-question-bytes",
            self.max_question_bytes,
            AskConfig::default().max_question_bytes,
            16..=1024 * 1024,
        )?;
        let defaults = DocumentLimits::default();
        let documents = DocumentLimits {
            max_documents: in_range(
                "--max-documents-per-request",
                self.max_documents_per_request,
                defaults.max_documents,
                1..=100_000,
            )?,
            max_text_bytes: in_range(
                "--max-document-bytes",
                self.max_document_bytes,
                defaults.max_text_bytes.min(max_message_bytes),
                1024..=(64 * 1024 * 1024).min(max_message_bytes),
            )?,
            ..defaults
        };
        let search = SearchLimits {
            max_top_k,
            max_query_bytes: max_question_bytes,
            depth: SearchLimits::default().depth.max(max_top_k),
            ..SearchLimits::default()
        };
        Ok(Limits {
            documents,
            search,
            max_question_bytes,
            max_top_k,
        })
    }
}
