//! The tokenizer a GGUF file describes, built from its own metadata into a
//! `tokenizers::Tokenizer`, as llama.cpp builds it: no tokenizer.json ships
//! with a GGUF model.
//!
//! Supported: `tokenizer.ggml.model = "gpt2"` (byte-level BPE), with the
//! pre-tokenizer named by `tokenizer.ggml.pre` mapped to the regular
//! expressions llama.cpp uses for it. Control and user-defined tokens
//! (`tokenizer.ggml.token_type` 3 and 4) become added tokens, so that
//! `<|im_start|>` in a rendered chat prompt is one token, as llama.cpp's
//! `parse_special` gives. SentencePiece vocabularies (`"llama"`) are
//! refused with a message, not approximated.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Map};
use tokenizers::Tokenizer;

use crate::GenerateError;

/// llama.cpp's token types.
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// What the generator needs to know about the vocabulary besides the
/// tokenizer itself.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Beginning-of-sequence token and its text.
    pub bos: Option<(u32, String)>,
    /// End-of-sequence token and its text.
    pub eos: Option<(u32, String)>,
    /// Whether prompts start with the BOS token.
    pub add_bos: bool,
    /// Control tokens (never shown in output; an end-of-turn marker among
    /// them ends generation).
    pub control: Vec<(u32, String)>,
    /// The chat template, when the file has one.
    pub chat_template: Option<String>,
}

fn meta<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value, GenerateError> {
    md.get(key)
        .ok_or_else(|| GenerateError::Model(format!("the GGUF metadata has no {key}")))
}

fn bad(key: &str, e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Model(format!("GGUF metadata {key}: {e}"))
}

fn strings(md: &HashMap<String, Value>, key: &str) -> Result<Vec<String>, GenerateError> {
    meta(md, key)?
        .to_vec()
        .map_err(|e| bad(key, e))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| bad(key, e)))
        .collect()
}

fn optional_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| v.to_u32().ok())
}

/// The regular expression of a GPT-2-style split that keeps contractions,
/// letters, numbers and punctuation apart (llama.cpp's "llama3" and
/// "qwen2" differ only in how many digits a number piece holds).
fn split_regex(digits: &str) -> String {
    format!(
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{digits}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
}

/// The pre-tokenizer (and whether whole words in the vocabulary skip the
/// merges) for llama.cpp's pre-tokenizer name.
fn pre_tokenizer(pre: &str) -> Result<(serde_json::Value, bool), GenerateError> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |regex: String| json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        // GPT-2's own expression, inside the byte-level step.
        "default" | "gpt-2" | "gpt2" => (byte_level(true), false),
        // Single digits first, then GPT-2's expression (SmolLM, StarCoder).
        "smollm" | "starcoder" | "refact" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]}),
            false,
        ),
        "llama3" | "llama-bpe" | "llama-v3" => (
            json!({"type": "Sequence", "pretokenizers": [split(split_regex("{1,3}")), byte_level(false)]}),
            true,
        ),
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "Sequence", "pretokenizers": [split(split_regex("")), byte_level(false)]}),
            false,
        ),
        other => {
            return Err(GenerateError::Model(format!(
                "tokenizer.ggml.pre {other:?} is not supported (supported: default, gpt-2, smollm, starcoder, refact, llama3, llama-bpe, qwen2)"
            )))
        }
    })
}

/// Builds the vocabulary of a GGUF file from its metadata.
pub fn vocab_from_gguf(md: &HashMap<String, Value>) -> Result<Vocab, GenerateError> {
    let model = meta(md, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| bad("tokenizer.ggml.model", e))?;
    if model != "gpt2" {
        return Err(GenerateError::Model(format!(
            "tokenizer.ggml.model {model:?} is not supported: only byte-level BPE (\"gpt2\") vocabularies are"
        )));
    }
    let tokens = strings(md, "tokenizer.ggml.tokens")?;
    let merges = strings(md, "tokenizer.ggml.merges")?;
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| bad("tokenizer.ggml.token_type", e))?
            .iter()
            .map(|t| t.to_i32().map_err(|e| bad("tokenizer.ggml.token_type", e)))
            .collect::<Result<_, _>>()?,
        None => vec![1; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(GenerateError::Model(format!(
            "GGUF metadata: {} token types for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let pre = match md.get("tokenizer.ggml.pre") {
        Some(v) => v
            .to_string()
            .map_err(|e| bad("tokenizer.ggml.pre", e))?
            .clone(),
        None => "default".to_owned(),
    };
    let (pre_tokenizer, ignore_merges) = pre_tokenizer(&pre)?;

    let mut vocab = Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    let mut control = Vec::new();
    for (id, (token, kind)) in tokens.iter().zip(&types).enumerate() {
        // Later ids win on duplicates, as in llama.cpp's token_to_id map.
        vocab.insert(token.clone(), json!(id));
        if *kind == TOKEN_TYPE_CONTROL || *kind == TOKEN_TYPE_USER_DEFINED {
            added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": *kind == TOKEN_TYPE_CONTROL,
            }));
        }
        if *kind == TOKEN_TYPE_CONTROL {
            control.push((id as u32, token.clone()));
        }
    }
    let merges: Vec<serde_json::Value> = merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').ok_or_else(|| {
                GenerateError::Model(format!("GGUF merge {m:?} is not two tokens"))
            })?;
            Ok(json!([a, b]))
        })
        .collect::<Result<_, GenerateError>>()?;
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
            "vocab": vocab, "merges": merges,
        },
    });
    let tokenizer: Tokenizer = spec
        .to_string()
        .parse()
        .map_err(|e| GenerateError::Model(format!("building the tokenizer from GGUF: {e}")))?;

    let named = |key: &str| {
        optional_u32(md, key).and_then(|id| tokens.get(id as usize).map(|t| (id, t.clone())))
    };
    let add_bos = md
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let chat_template = md
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .cloned();
    Ok(Vocab {
        tokenizer,
        bos: named("tokenizer.ggml.bos_token_id"),
        eos: named("tokenizer.ggml.eos_token_id"),
        add_bos,
        control,
        chat_template,
    })
}
