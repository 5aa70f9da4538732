//! Which files make a generation model, and telling the two formats
//! apart: a GGUF file (or a folder holding one), or a Hugging Face folder
//! with config.json, tokenizer.json and safetensors weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use quarry_models::{FileSet, ModelCache, ModelSource};

use crate::{vocab_from_gguf, vocab_from_hf, GenerateError, Vocab};

/// A GGUF model folder: one GGUF file.
pub const GGUF_FILES: FileSet<'static> = FileSet {
    required: &["*.gguf"],
    optional: &[],
};

/// A Hugging Face model folder.
pub const SAFETENSORS_FILES: FileSet<'static> = FileSet {
    required: &["config.json", "tokenizer.json", "*.safetensors"],
    optional: &["tokenizer_config.json", "generation_config.json"],
};

/// A generation model on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFormat {
    /// This GGUF file.
    Gguf(PathBuf),
    /// This Hugging Face folder.
    Safetensors(PathBuf),
}

impl ModelFormat {
    /// What `path` holds: a .gguf file, a folder with a .gguf file (the
    /// first by name), or a folder with config.json and safetensors files.
    pub fn detect(path: &Path) -> Result<Self, GenerateError> {
        if path.is_file() {
            return Ok(Self::Gguf(path.to_path_buf()));
        }
        if let Ok(gguf) = find_gguf(path) {
            return Ok(Self::Gguf(gguf));
        }
        if path.join("config.json").is_file() {
            return Ok(Self::Safetensors(path.to_path_buf()));
        }
        Err(GenerateError::Model(format!(
            "{} holds neither a .gguf file nor a Hugging Face model (config.json, tokenizer.json, *.safetensors)",
            path.display()
        )))
    }

    /// The model's vocabulary and chat template.
    pub fn vocab(&self) -> Result<Vocab, GenerateError> {
        match self {
            Self::Gguf(file) => vocab_from_gguf(&read_gguf_metadata(file)?),
            Self::Safetensors(dir) => vocab_from_hf(dir),
        }
    }
}

/// The generation model folder for `source`, fetched into `cache` when
/// it is not there: a folder already holding either format is used as it
/// is; otherwise the source is fetched as a GGUF model (the default
/// generator's format), then as a safetensors one.
pub fn fetch_generator(
    cache: &ModelCache,
    source: &ModelSource,
) -> Result<PathBuf, quarry_models::ModelsError> {
    if let Some(dir) = cache
        .locate(source, &GGUF_FILES)
        .or_else(|| cache.locate(source, &SAFETENSORS_FILES))
    {
        return Ok(dir);
    }
    cache
        .fetch(source, &GGUF_FILES)
        .or_else(|first| cache.fetch(source, &SAFETENSORS_FILES).map_err(|_| first))
}

/// The GGUF file in a model folder (the first by name when several), or
/// `path` itself when it is a file.
pub fn find_gguf(path: &Path) -> Result<PathBuf, GenerateError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    files_with_extension(path, "gguf")?
        .into_iter()
        .next()
        .ok_or_else(|| GenerateError::Model(format!("no .gguf file in {}", path.display())))
}

/// The files of `dir` named `*.{ext}`, sorted.
pub(crate) fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, GenerateError> {
    let io = |source| GenerateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    Ok(found)
}

/// Reads a GGUF file's metadata (not its tensors).
pub fn read_gguf_metadata(path: &Path) -> Result<HashMap<String, gguf_file::Value>, GenerateError> {
    let io = |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    parse_gguf_metadata(&mut file, &path.display().to_string())
}

/// Reads GGUF metadata from `reader` (`name` for messages). The bytes are
/// untrusted (fuzzed by fuzz/fuzz_targets/gguf_metadata.rs).
pub fn parse_gguf_metadata<R: std::io::Read + std::io::Seek>(
    reader: &mut R,
    name: &str,
) -> Result<HashMap<String, gguf_file::Value>, GenerateError> {
    let content = gguf_file::Content::read(reader)
        .map_err(|e| GenerateError::Model(format!("{name}: not a GGUF file: {e}")))?;
    Ok(content.metadata)
}
