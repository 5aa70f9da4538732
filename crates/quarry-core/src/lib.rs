//! Types shared by every Quarry crate: collections and their settings,
//! documents and metadata, chunks, prompt/response records, and the
//! validation error that names the offending field.
//!
//! This crate has no heavy dependencies on purpose: the model, index and
//! store crates all depend on it, and it depends on none of them.

pub mod collection;
pub mod document;
pub mod error;
pub mod filter;
pub mod language;
pub mod quantization;
pub mod record;
pub mod time;

pub use collection::{
    CollectionInfo, CollectionName, CollectionSettings, IndexedCounts, Placement, SettingsPatch,
};
pub use document::{
    Chunk, Document, MetaValue, Metadata, NewChunk, NewDocument, StoredDocument, UpsertStatus,
};
pub use error::InvalidArgument;
pub use filter::Filter;
pub use language::Language;
pub use quantization::Quantization;
pub use record::{
    AnswerMode, EvidenceSentence, Record, RecordId, RetrievedChunk, SentenceCheck, SentenceStatus,
    Timings, UsedCitation,
};
pub use time::now_ms;
