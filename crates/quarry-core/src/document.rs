//! Documents as clients load them, their flat metadata, the chunks the
//! server cuts them into, and the shapes in which documents pass to and
//! from storage (any backend: see the engine's storage seam).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One metadata value. Metadata is flat so that every key can be filtered on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaValue {
    /// A UTF-8 string.
    String(String),
    /// A signed integer.
    Int(i64),
    /// A finite double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    StringList(Vec<String>),
}

/// A document's metadata, ordered by key so that hashing it is stable.
pub type Metadata = BTreeMap<String, MetaValue>;

/// A document as a client loads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique within its collection.
    pub id: String,
    /// Optional title, kept with every chunk.
    #[serde(default)]
    pub title: String,
    /// The full text.
    pub text: String,
    /// Flat metadata.
    #[serde(default)]
    pub metadata: Metadata,
}

/// A piece of a document: the unit that is embedded, indexed and retrieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Unique within its collection, never reused (HNSW ids are these).
    pub id: u64,
    /// The document it was cut from.
    pub document_id: String,
    /// Its position within the document, from 0.
    pub index: u32,
    /// The chunk's text.
    pub text: String,
}

/// A document as stored: the client's document plus what the server derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDocument {
    /// The document as loaded.
    pub document: Document,
    /// Hash of its normalised content, to skip unchanged re-loads.
    pub content_hash: String,
    /// Its chunks' ids, in order.
    pub chunk_ids: Vec<u64>,
    /// The op-log sequence number of its last change.
    pub updated_seq: u64,
}

/// A chunk to store: text and its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// The chunk's text.
    pub text: String,
    /// Its embedding.
    pub vector: Vec<f32>,
}

/// A document to store, already hashed, chunked and embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// The document.
    pub document: Document,
    /// Its content hash.
    pub content_hash: String,
    /// Its chunks, in order.
    pub chunks: Vec<NewChunk>,
}

/// What an upsert did to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertStatus {
    /// It did not exist.
    Added,
    /// It existed with other content; its chunks were replaced.
    Updated,
    /// It existed with the same content hash; nothing was written.
    Unchanged,
}
