//! The vocabulary of a Hugging Face model folder: tokenizer.json as it
//! is, and from tokenizer_config.json the chat template and the BOS/EOS
//! tokens (generation_config.json's `eos_token_id`s end turns too).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::{GenerateError, Vocab};

/// A token in tokenizer_config.json: a string or `{"content": ...}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenSpec {
    Text(String),
    Object { content: String },
}

impl TokenSpec {
    fn text(&self) -> &str {
        match self {
            TokenSpec::Text(t) | TokenSpec::Object { content: t } => t,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    chat_template: Option<Value>,
    bos_token: Option<TokenSpec>,
    eos_token: Option<TokenSpec>,
    add_bos_token: Option<bool>,
}

fn read_json(path: &Path) -> Result<Option<Value>, GenerateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| GenerateError::Model(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GenerateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The chat template: a string, or a list of named templates of which
/// "default" (else the first) is taken.
fn chat_template(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => {
            let named = |want: Option<&str>| {
                list.iter().find_map(|t| {
                    let name = t.get("name").and_then(Value::as_str);
                    let template = t.get("template").and_then(Value::as_str)?;
                    (want.is_none() || name == want).then(|| template.to_owned())
                })
            };
            named(Some("default")).or_else(|| named(None))
        }
        _ => None,
    }
}

/// Reads the vocabulary of the model folder `dir`.
pub fn vocab_from_hf(dir: &Path) -> Result<Vocab, GenerateError> {
    let path = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path)
        .map_err(|e| GenerateError::Model(format!("{}: {e}", path.display())))?;
    // Prompts are encoded whole and unpadded: a baked-in padding or
    // truncation would change them silently.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|e| GenerateError::Tokenizer(e.to_string()))?;
    let config: TokenizerConfig = match read_json(&dir.join("tokenizer_config.json"))? {
        Some(v) => serde_json::from_value(v).map_err(|e| {
            GenerateError::Model(format!("{}/tokenizer_config.json: {e}", dir.display()))
        })?,
        None => TokenizerConfig::default(),
    };
    let named = |spec: &Option<TokenSpec>| {
        let text = spec.as_ref()?.text();
        tokenizer.token_to_id(text).map(|id| (id, text.to_owned()))
    };
    let (bos, eos) = (named(&config.bos_token), named(&config.eos_token));
    let mut control: Vec<(u32, String)> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, t)| (id, t.content))
        .collect();
    let mut extra_eos = Vec::new();
    if let Some(generation) = read_json(&dir.join("generation_config.json"))? {
        match generation.get("eos_token_id") {
            Some(Value::Number(n)) => extra_eos.extend(n.as_u64()),
            Some(Value::Array(ids)) => extra_eos.extend(ids.iter().filter_map(Value::as_u64)),
            _ => {}
        }
    }
    for id in extra_eos
        .into_iter()
        .chain(eos.iter().map(|(id, _)| *id as u64))
    {
        let id = id as u32;
        if !control.iter().any(|(c, _)| *c == id) {
            control.push((id, tokenizer.id_to_token(id).unwrap_or_default()));
        }
    }
    control.sort();
    Ok(Vocab {
        add_bos: config.add_bos_token.unwrap_or(false) && bos.is_some(),
        chat_template: chat_template(config.chat_template.as_ref()),
        tokenizer,
        bos,
        eos,
        control,
    })
}
