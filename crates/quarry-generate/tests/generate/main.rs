//! quarry-generate's tests against the real SmolLM2 files (and models
//! derived from them), one module per area, in one test binary: each test
//! binary links candle and the tokenizer, so one builds faster than five.
//! Run one area with `cargo test --workspace --test generate queue::`.

// Helpers outside #[test] functions unwrap too: a failure here is the
// test failing.
#![allow(clippy::unwrap_used)]

mod batching;
mod derive;
mod formats;
mod greedy;
mod queue;
mod stream;
mod tokenizer;
