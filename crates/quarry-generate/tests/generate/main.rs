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

use quarry_generate::{find_gguf, SamplingParams};
use quarry_models::{ModelCache, DEFAULT_GENERATE_MODEL};

/// The default generation model's GGUF file, fetched into the cache.
fn path() -> std::path::PathBuf {
    let dir = ModelCache::from_env()
        .fetch(
            &DEFAULT_GENERATE_MODEL.parse().unwrap(),
            &quarry_generate::GGUF_FILES,
        )
        .unwrap();
    find_gguf(&dir).unwrap()
}

/// Greedy sampling of up to `max` tokens.
fn greedy(max: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_new_tokens: max,
        ..Default::default()
    }
}
