//! Quarry's second storage backend, on a Qdrant cluster: how a chunk's
//! metadata is laid out in a Qdrant payload ([`payload`]) and how Quarry's
//! metadata filters become Qdrant filters with the same meaning
//! ([`filter`]).

pub mod filter;
pub mod payload;

pub use filter::filter_of;
pub use payload::metadata_payload;
