//! Reading a sentence-transformers folder: which pooling, whether to
//! normalise, the maximum sequence length and lower-casing, from
//! `modules.json`, the pooling module's `config.json` and
//! `sentence_bert_config.json`. A plain BERT folder without them gets mean
//! pooling, L2 normalisation and the model's position limit (at most 512).

use std::path::Path;

use serde::Deserialize;

use crate::EmbedError;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the token vectors under the attention mask.
    Mean,
    /// The first token's (`[CLS]`) vector.
    Cls,
    /// Element-wise maximum over the unmasked tokens.
    Max,
    /// Sum under the mask divided by the square root of the length.
    MeanSqrtLen,
}

/// What the folder says about turning the encoder into a sentence embedder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceConfig {
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether to L2-normalise the pooled vector.
    pub normalize: bool,
    /// Longest input in tokens, special tokens included; longer is cut.
    pub max_seq_length: usize,
    /// Lower-case the text before tokenising.
    pub do_lower_case: bool,
}

#[derive(Deserialize)]
struct Module {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SbertFile {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, EmbedError> {
    match std::fs::read(path) {
        Ok(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| EmbedError::file(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EmbedError::file(path, e)),
    }
}

impl SentenceConfig {
    /// Reads the folder's configuration; `max_position_embeddings` comes
    /// from the encoder's `config.json`.
    pub fn read(dir: &Path, max_position_embeddings: usize) -> Result<Self, EmbedError> {
        let position_limit = max_position_embeddings.min(512);
        let modules: Option<Vec<Module>> = read_json(&dir.join("modules.json"))?;
        let (pooling, normalize) = match &modules {
            Some(modules) => {
                let pooling_module = modules
                    .iter()
                    .find(|m| m.kind.ends_with(".Pooling"))
                    .ok_or_else(|| {
                        EmbedError::file(dir.join("modules.json"), "no Pooling module is listed")
                    })?;
                let pooling_path = dir.join(&pooling_module.path).join("config.json");
                let file: PoolingFile = read_json(&pooling_path)?.ok_or_else(|| {
                    EmbedError::file(&pooling_path, "missing, but modules.json lists it")
                })?;
                let pooling =
                    match (
                        file.pooling_mode_mean_tokens,
                        file.pooling_mode_cls_token,
                        file.pooling_mode_max_tokens,
                        file.pooling_mode_mean_sqrt_len_tokens,
                    ) {
                        (true, false, false, false) => Pooling::Mean,
                        (false, true, false, false) => Pooling::Cls,
                        (false, false, true, false) => Pooling::Max,
                        (false, false, false, true) => Pooling::MeanSqrtLen,
                        _ => return Err(EmbedError::file(
                            &pooling_path,
                            "exactly one pooling mode (mean, cls, max, mean_sqrt_len) must be on",
                        )),
                    };
                let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
                (pooling, normalize)
            }
            None => (Pooling::Mean, true),
        };
        let sbert: Option<SbertFile> = read_json(&dir.join("sentence_bert_config.json"))?;
        let max_seq_length = sbert
            .as_ref()
            .and_then(|s| s.max_seq_length)
            .unwrap_or(position_limit)
            .min(position_limit);
        Ok(Self {
            pooling,
            normalize,
            max_seq_length,
            do_lower_case: sbert.is_some_and(|s| s.do_lower_case),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_a_sentence_transformers_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "modules.json",
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        );
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension":384,"pooling_mode_cls_token":false,"pooling_mode_mean_tokens":true}"#,
        );
        write(
            dir.path(),
            "sentence_bert_config.json",
            r#"{"max_seq_length":256,"do_lower_case":false}"#,
        );
        let c = SentenceConfig::read(dir.path(), 512).unwrap();
        assert_eq!(
            c,
            SentenceConfig {
                pooling: Pooling::Mean,
                normalize: true,
                max_seq_length: 256,
                do_lower_case: false
            }
        );
    }

    #[test]
    fn cls_without_normalize_and_position_limits_apply() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "modules.json",
            r#"[{"path":"","type":"sentence_transformers.models.Transformer"},{"path":"p","type":"sentence_transformers.models.Pooling"}]"#,
        );
        write(
            dir.path(),
            "p/config.json",
            r#"{"pooling_mode_cls_token":true}"#,
        );
        write(
            dir.path(),
            "sentence_bert_config.json",
            r#"{"max_seq_length":8192,"do_lower_case":true}"#,
        );
        let c = SentenceConfig::read(dir.path(), 512).unwrap();
        assert_eq!(c.pooling, Pooling::Cls);
        assert!(!c.normalize);
        assert_eq!(c.max_seq_length, 512);
        assert!(c.do_lower_case);
    }

    #[test]
    fn a_plain_bert_folder_gets_defaults_and_bad_pooling_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = SentenceConfig::read(dir.path(), 128).unwrap();
        assert_eq!(
            (c.pooling, c.normalize, c.max_seq_length),
            (Pooling::Mean, true, 128)
        );

        write(
            dir.path(),
            "modules.json",
            r#"[{"path":"p","type":"x.Pooling"}]"#,
        );
        write(
            dir.path(),
            "p/config.json",
            r#"{"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":true}"#,
        );
        let err = SentenceConfig::read(dir.path(), 512)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one pooling mode"), "{err}");
    }
}
