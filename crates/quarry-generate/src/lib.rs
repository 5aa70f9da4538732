//! Text generation: candle decoders (GGUF and safetensors llama/qwen2), the
//! tokenizer built from the model's own metadata, chat templates, sampling,
//! UTF-8-safe streaming and a model thread behind a bounded queue.
//!
//! In this build: the GGUF vocabulary ([`gguf_vocab`]), chat templates
//! ([`template`]), a llama decoder ([`llama`]), sampling ([`sampling`]) and
//! UTF-8-safe streaming with stop sequences ([`stream`]), and the model
//! thread behind a bounded queue ([`queue`]). The server's `Rag.Ask` is
//! wired to it with the next issue; until then it answers UNIMPLEMENTED.

mod error;
pub mod gguf_vocab;
pub mod llama;
pub mod queue;
pub mod sampling;
pub mod stream;
pub mod template;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;

pub use error::GenerateError;
pub use gguf_vocab::{vocab_from_gguf, Vocab};
pub use llama::{KvCache, LlamaModel};
pub use queue::{Event, Finish, FinishReason, GenerateQueue};
pub use sampling::{argmax, Sampler, SamplingParams};
pub use stream::{Delta, TextStream};
pub use template::{ChatTemplate, Message};

/// What a generator model folder must hold: one GGUF file.
pub const GGUF_FILES: quarry_models::FileSet<'static> = quarry_models::FileSet {
    required: &["*.gguf"],
    optional: &[],
};

/// The GGUF file in a model folder (the first by name when several), or
/// `path` itself when it is a file.
pub fn find_gguf(path: &Path) -> Result<std::path::PathBuf, GenerateError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let io = |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| GenerateError::Model(format!("no .gguf file in {}", path.display())))
}

/// Reads a GGUF file's metadata (not its tensors).
pub fn read_gguf_metadata(path: &Path) -> Result<HashMap<String, gguf_file::Value>, GenerateError> {
    let io = |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| GenerateError::Model(format!("{}: not a GGUF file: {e}", path.display())))?;
    Ok(content.metadata)
}
