//! Quarry: a retrieval-augmented generation server with an embedded vector
//! store. This crate is the edge: the gRPC contract (`proto`), the server
//! that maps it onto [`quarry_engine`] (`grpc`) and the server's configuration
//! (`config`) and API keys (`auth`), and the harness that starts a server
//! as a child process for tests and benchmarks (`serve_process`); the binary (`main.rs` and `cli/`) adds the command line. tonic and prost appear
//! nowhere else in the workspace.

pub mod auth;
pub mod config;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod qdrant_process;
pub mod serve_process;

/// The generated `quarry.v1` messages, clients and servers.
pub mod proto {
    #![allow(missing_docs, clippy::large_enum_variant)]
    tonic::include_proto!("quarry.v1");
    // The proto3 JSON mapping of every message (pbjson), for the HTTP API.
    include!(concat!(env!("OUT_DIR"), "/quarry.v1.serde.rs"));

    /// The encoded descriptors of every `quarry.v1` file, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/quarry_descriptor.bin"));
}
