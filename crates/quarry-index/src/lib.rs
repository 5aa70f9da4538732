//! Retrieval indexes derived from the store: an HNSW dense index and a
//! tantivy BM25 index per collection, their fusion (RRF, convex, DBSF),
//! metadata filters applied inside both, tombstones and rebuilds, and
//! checkpoints on disk that record the last op-log sequence number they
//! contain, from which [`recovery`] replays.
//!
//! Modules: [`dense`] (the graph), [`keyword`] (BM25), [`analyzer`] (its
//! analyzers, one per collection language), [`fusion`],
//! [`collection`] (one collection's indexes and their bookkeeping),
//! `doc_table` and `doc_file` (its documents' metadata and chunks, in
//! memory and on disk),
//! [`hnsw`] (the graph itself: build, search, repair), [`checkpoint`] (the
//! graph on disk), [`recovery`] (opening after a stop or a crash).

pub mod analyzer;
pub mod checkpoint;
pub mod collection;
pub mod dense;
pub mod distance;
mod doc_file;
mod doc_table;
mod error;
pub mod fusion;
pub mod hnsw;
pub mod keyword;
mod meta_index;
pub mod recovery;

pub use collection::{
    combine, CollectionIndex, IndexedChunk, IndexedDocument, Mode, RebuildJob, SearchQuery,
};
pub use dense::DenseIndex;
pub use distance::Metric;
pub use error::IndexError;
pub use fusion::{fuse, Fused, Fusion, Ranked, DEFAULT_CONVEX_ALPHA, DEFAULT_RRF_K};
pub use hnsw::Graph;
pub use keyword::KeywordIndex;
pub use recovery::{Change, Recovered, RecoveryReport, Truth, TruthChunk, TruthDocument};
