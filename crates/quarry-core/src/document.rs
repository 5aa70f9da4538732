//! Documents as clients load them, their flat metadata, and the chunks the
//! server cuts them into.

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
