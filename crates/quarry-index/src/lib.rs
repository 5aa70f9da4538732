//! Retrieval indexes derived from the store: an hnsw_rs dense index and a
//! tantivy BM25 index per collection, their fusion (RRF and convex), metadata
//! filters applied inside both, tombstones and rebuilds, and checkpoints that
//! record the last op-log sequence number they contain.
//!
//! Empty in this build: hybrid retrieval lands with its own issue, and until
//! then the server answers `Retrieval.Search` with UNIMPLEMENTED.
