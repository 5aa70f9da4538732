//! The prompt history: listing (filtered, newest first, in signed pages),
//! reading, rating, exporting and erasing the records Ask writes.
//!
//! A page token names the last record of its page and carries a keyed
//! hash of that id and the filter it was issued for, so a token that was
//! edited, or replayed with other filters, is refused with
//! INVALID_ARGUMENT instead of silently listing something else.

use quarry_core::{InvalidArgument, Record, RecordId};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::storage::RecordIter;
use crate::{Engine, Result};

/// Records per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Most records per page.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Longest rating comment, in bytes.
pub const MAX_COMMENT_BYTES: usize = 4096;
/// Lowest and highest rating.
pub const RATING_RANGE: std::ops::RangeInclusive<i32> = -1..=5;

/// Which records to list or export; `None` fields match all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordFilter {
    /// Only this collection.
    pub collection: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Created at or after (ms since the epoch).
    pub created_after: Option<i64>,
    /// Created before (ms since the epoch).
    pub created_before: Option<i64>,
    /// Rated at least.
    pub min_rating: Option<i32>,
    /// Rated at most.
    pub max_rating: Option<i32>,
    /// Question or answer contains this (case-insensitive).
    pub text_contains: Option<String>,
    /// Only rated (true) or unrated (false) records.
    pub rated: Option<bool>,
    /// Only this principal's records (set by the server for non-admins).
    pub principal: Option<String>,
    /// Only answers with a sentence that failed verification or refused as
    /// not supported (true), or only answers without (false).
    // Unset filters stay out of the page-token signature, so tokens issued
    // before these filters existed still verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<bool>,
    /// Only answers built in this mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_mode: Option<quarry_core::AnswerMode>,
    /// Only answers that ended for this reason ([`crate::AskFinish`] name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

impl RecordFilter {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), InvalidArgument> {
        if let (Some(a), Some(b)) = (self.created_after, self.created_before) {
            if a >= b {
                return Err(InvalidArgument::new(
                    "filter.created_before",
                    format!("is {b}, not after created_after {a}"),
                ));
            }
        }
        for (field, value) in [
            ("filter.min_rating", self.min_rating),
            ("filter.max_rating", self.max_rating),
        ] {
            if let Some(v) = value.filter(|v| !RATING_RANGE.contains(v)) {
                return Err(InvalidArgument::new(
                    field,
                    format!("is {v}; ratings run from -1 to 5"),
                ));
            }
        }
        if let Some(t) = &self.text_contains {
            if t.len() > 1024 {
                return Err(InvalidArgument::new(
                    "filter.text_contains",
                    format!("is {} bytes; the limit is 1024", t.len()),
                ));
            }
        }
        Ok(())
    }

    /// Whether `r` passes.
    pub fn matches(&self, r: &Record) -> bool {
        let text = |needle: &str| {
            let needle = needle.to_lowercase();
            r.question.to_lowercase().contains(&needle) || r.answer.to_lowercase().contains(&needle)
        };
        self.collection.as_ref().is_none_or(|c| *c == r.collection)
            && self.session_id.as_ref().is_none_or(|s| *s == r.session_id)
            && self.principal.as_ref().is_none_or(|p| *p == r.principal)
            && self.created_after.is_none_or(|t| r.created_at >= t)
            && self.created_before.is_none_or(|t| r.created_at < t)
            && self
                .min_rating
                .is_none_or(|m| r.rating.is_some_and(|v| v >= m))
            && self
                .max_rating
                .is_none_or(|m| r.rating.is_some_and(|v| v <= m))
            && self.rated.is_none_or(|want| r.rating.is_some() == want)
            && self.text_contains.as_deref().is_none_or(text)
            && self
                .unsupported
                .is_none_or(|want| r.has_unsupported() == want)
            && self.answer_mode.is_none_or(|m| r.answer_mode == m)
            && self
                .finish_reason
                .as_ref()
                .is_none_or(|f| *f == r.finish_reason)
    }
}

/// One page of records.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    /// Newest first.
    pub records: Vec<Record>,
    /// The token of the next page; empty on the last.
    pub next_page_token: String,
}

/// Which records to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSelector {
    /// These ids.
    Ids(Vec<RecordId>),
    /// Every record of this session.
    Session(String),
}

fn signature(secret: &[u8], filter: &RecordFilter, last: RecordId) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(serde_json::to_vec(filter).expect("serialisable"));
    h.update(last.0.to_be_bytes());
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The page token after record `last` for `filter`: the id and a
/// signature over the data directory's secret, the filter and the id.
pub fn page_token(secret: &[u8], filter: &RecordFilter, last: RecordId) -> String {
    format!("{last}.{}", signature(secret, filter, last))
}

/// The record a page token continues after, `None` for the empty token;
/// INVALID_ARGUMENT for a token not issued with this secret and filter.
/// Parses untrusted client input (fuzzed by fuzz/fuzz_targets/page_token.rs).
pub fn parse_page_token(
    secret: &[u8],
    filter: &RecordFilter,
    token: &str,
) -> Result<Option<RecordId>, InvalidArgument> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        InvalidArgument::new(
            "page_token",
            "was not issued by this server for these filters (pass next_page_token unchanged, with the same filters)",
        )
    };
    let (id, sig) = token.split_once('.').ok_or_else(bad)?;
    let id: RecordId = id.parse().map_err(|_| bad())?;
    if sig != signature(secret, filter, id) {
        return Err(bad());
    }
    Ok(Some(id))
}

impl Engine {
    /// A page of records matching `filter`, newest first.
    pub async fn list_records(
        &self,
        filter: RecordFilter,
        page_size: usize,
        token: String,
    ) -> Result<RecordPage> {
        filter.validate()?;
        if page_size > MAX_PAGE_SIZE {
            return Err(InvalidArgument::new(
                "page_size",
                format!("is {page_size}; the limit is {MAX_PAGE_SIZE}"),
            )
            .into());
        }
        let size = if page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page_size
        };
        self.blocking(move |inner| {
            let store = inner.storage.records();
            let secret = store.page_token_secret()?;
            let before = parse_page_token(&secret, &filter, &token)?;
            let mut records = Vec::with_capacity(size + 1);
            // A session's records come from its index, the rest from a scan.
            let candidates: RecordIter<'_> = match &filter.session_id {
                Some(session) => Box::new(
                    store
                        .session_ids(session)
                        .filter(move |id| match (id, before) {
                            (Ok(id), Some(b)) => *id < b,
                            _ => true,
                        })
                        .map(|id| id.and_then(|id| store.get(id))),
                ),
                None => store.newest_first(before),
            };
            for record in candidates {
                let record = record?;
                if filter.matches(&record) {
                    records.push(record);
                    if records.len() > size {
                        break;
                    }
                }
            }
            let next_page_token = if records.len() > size {
                records.truncate(size);
                page_token(&secret, &filter, records[size - 1].id)
            } else {
                String::new()
            };
            Ok(RecordPage {
                records,
                next_page_token,
            })
        })
        .await
    }

    /// One record.
    pub async fn get_record(&self, id: RecordId) -> Result<Record> {
        self.blocking(move |inner| inner.storage.records().get(id))
            .await
    }

    /// Rates a record (replacing an earlier rating).
    pub async fn rate_record(&self, id: RecordId, score: i32, comment: String) -> Result<Record> {
        if !RATING_RANGE.contains(&score) {
            return Err(InvalidArgument::new(
                "score",
                format!("is {score}; ratings run from -1 to 5"),
            )
            .into());
        }
        if comment.len() > MAX_COMMENT_BYTES {
            return Err(InvalidArgument::new(
                "comment",
                format!(
                    "is {} bytes; the limit is {MAX_COMMENT_BYTES} bytes",
                    comment.len()
                ),
            )
            .into());
        }
        self.blocking(move |inner| {
            inner.storage.check_writable()?;
            inner.storage.records().update(id, &|r| {
                r.rating = Some(score);
                r.comment = comment.clone();
            })
        })
        .await
    }

    /// Every record matching `filter`, oldest first, streamed from the
    /// blocking pool (it stops when the receiver is dropped).
    pub fn export_records(&self, filter: RecordFilter) -> Result<mpsc::Receiver<Result<Record>>> {
        filter.validate()?;
        let (tx, rx) = mpsc::channel(64);
        let inner = std::sync::Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            for record in inner.storage.records().oldest_first() {
                let item = match record {
                    Ok(r) if !filter.matches(&r) => continue,
                    item => item,
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// Deletes records; returns how many.
    pub async fn delete_records(&self, selector: RecordSelector) -> Result<u64> {
        match &selector {
            RecordSelector::Ids(ids) if ids.is_empty() => {
                return Err(InvalidArgument::new("ids", "set ids or session_id").into())
            }
            RecordSelector::Ids(ids) if ids.len() > MAX_PAGE_SIZE => {
                return Err(InvalidArgument::new(
                    "ids",
                    format!("has {} ids; the limit is {MAX_PAGE_SIZE}", ids.len()),
                )
                .into())
            }
            _ => {}
        }
        self.blocking(move |inner| {
            inner.storage.check_writable()?;
            let records = inner.storage.records();
            match &selector {
                RecordSelector::Ids(ids) => records.delete(ids),
                RecordSelector::Session(s) => records.delete_session(s),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_are_bound_to_their_filter_and_id() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let f = RecordFilter {
            collection: Some("docs".into()),
            ..Default::default()
        };
        let token = page_token(secret, &f, RecordId(42));
        assert_eq!(
            parse_page_token(secret, &f, &token).unwrap(),
            Some(RecordId(42))
        );
        assert_eq!(parse_page_token(secret, &f, "").unwrap(), None);
        let other = RecordFilter::default();
        assert!(parse_page_token(secret, &other, &token).is_err());
        let edited = token.replacen("2a", "2b", 1);
        assert!(parse_page_token(secret, &f, &edited).is_err());
        assert!(parse_page_token(b"another secret", &f, &token).is_err());
        for junk in ["x", ".", "zz.zz", "000000000000002a"] {
            assert!(parse_page_token(secret, &f, junk).is_err(), "{junk}");
        }
    }
}
