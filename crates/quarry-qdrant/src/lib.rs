//! Quarry's second storage backend, on a Qdrant cluster, behind the
//! engine's storage seam ([`quarry_engine::storage`]):
//!
//! - [`storage`]: the backend ([`QdrantStorage`]): collections, placement,
//!   health;
//! - [`collection`]: one collection's chunks, vectors, search and deletes;
//! - [`records`]: Ask's prompt/response records, shared by every node;
//! - [`sparse`]: the BM25 sparse vectors Quarry computes;
//! - [`payload`] and [`filter`]: the metadata layout and the translation
//!   of Quarry's filters into Qdrant's, with the same meaning;
//! - [`client`]: the nodes, failover and the blocking bridge;
//! - [`ids`], [`wire`], [`error`]: ids, conversions, errors.

pub mod client;
pub mod collection;
pub mod error;
pub mod filter;
pub mod ids;
pub mod payload;
pub mod records;
pub mod sparse;
pub mod storage;
pub mod wire;

pub use client::QdrantConfig;
pub use error::QdrantBackendError;
pub use filter::filter_of;
pub use payload::metadata_payload;
pub use storage::QdrantStorage;
