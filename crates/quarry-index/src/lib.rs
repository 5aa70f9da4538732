//! Retrieval indexes derived from the store: an hnsw_rs dense index and a
//! tantivy BM25 index per collection, their fusion (RRF and convex), metadata
//! filters applied inside both, tombstones and rebuilds, and checkpoints that
//! record the last op-log sequence number they contain.
//!
//! In this build: fusion of ranked lists ([`fusion`]). The indexes land
//! with the hybrid retrieval capability; until then the server answers
//! `Retrieval.Search` with UNIMPLEMENTED.

pub mod fusion;

pub use fusion::{fuse, Fused, Fusion, Ranked};
