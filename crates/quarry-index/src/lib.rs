//! Retrieval indexes derived from the store: an hnsw_rs dense index and a
//! tantivy BM25 index per collection, their fusion (RRF and convex), metadata
//! filters applied inside both, tombstones and rebuilds, and checkpoints that
//! record the last op-log sequence number they contain.
//!
//! In this build: the dense ([`dense`]) and keyword ([`keyword`]) indexes in
//! memory and their fusion ([`fusion`]). Persistence with checkpoints and
//! the engine's search path come next; until then the server answers
//! `Retrieval.Search` with UNIMPLEMENTED.

pub mod collection;
pub mod dense;
pub mod fusion;
pub mod keyword;

pub use collection::{
    CollectionIndex, IndexError, IndexedChunk, IndexedDocument, Mode, SearchQuery,
};
pub use dense::DenseIndex;
pub use fusion::{fuse, Fused, Fusion, Ranked};
pub use keyword::KeywordIndex;
