//! Quarry's end-to-end tests, one module per area, in one test binary.
//!
//! Every test drives the real `quarry` binary (`common::TestServer`: an
//! ephemeral loopback port, its own data directory, the real default
//! models) or the real CLI. One binary instead of one per file: each test
//! binary links candle, tantivy and tonic, and linking twenty of them was
//! most of CI's build time. Run one area with `cargo test --workspace
//! --test e2e search::`, one test by its name.

// Helpers outside #[test] functions unwrap too: a failure here is the
// test failing.
#![allow(clippy::unwrap_used)]

mod common;

mod ask;
mod auth;
mod cli;
mod collections;
mod console;
mod crash;
mod deploy;
mod discovery;
mod disk;
mod documents;
mod embed;
mod eval;
mod hostile;
mod http;
mod ingest;
mod limits;
mod metrics;
mod migrate;
mod qdrant;
mod quickstart;
mod recovery;
mod scale_out;
mod search;
mod shutdown;
mod tls;
