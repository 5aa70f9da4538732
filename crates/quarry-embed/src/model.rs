//! The sentence embedder: tokenizer, BERT encoder ([`crate::encoder`]),
//! pooling and normalisation. Not thread-safe by design: one instance per
//! model thread.

use std::path::Path;

use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::encoder::{BertConfig, Encoder};
use crate::{EmbedError, Pooling, SentenceConfig};

/// A loaded sentence-embedding model.
pub struct SentenceEmbedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    config: SentenceConfig,
    pad_id: u32,
}

impl SentenceEmbedder {
    /// Loads the model in `dir` (config.json, tokenizer.json,
    /// model.safetensors, and the sentence-transformers files if present);
    /// large matrix products use up to `threads` threads.
    pub fn load(dir: &Path, threads: usize) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let raw = std::fs::read(&config_path).map_err(|e| EmbedError::file(&config_path, e))?;
        let bert: BertConfig =
            serde_json::from_slice(&raw).map_err(|e| EmbedError::file(&config_path, e))?;
        let config = SentenceConfig::read(dir, bert.max_position_embeddings)?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbedError::file(&tokenizer_path, e))?;
        // The shipped tokenizer.json may fix padding and truncation (all-MiniLM's
        // pads and cuts at 128). We pad per batch ourselves and cut at the
        // model's max_seq_length, as sentence-transformers does.
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .unwrap_or(bert.pad_token_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::file(&tokenizer_path, e))?;

        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(EmbedError::file(
                &weights,
                "missing (only safetensors weights are supported)",
            ));
        }
        let encoder = Encoder::load(dir, &bert, threads)?;
        Ok(Self {
            encoder,
            tokenizer,
            config,
            pad_id,
        })
    }

    /// The vectors' dimension.
    pub fn dimension(&self) -> usize {
        self.encoder.hidden_size()
    }

    /// The model's tokenizer (with its truncation to max_seq_length).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The folder's sentence configuration.
    pub fn config(&self) -> &SentenceConfig {
        &self.config
    }

    /// Tokenises texts: truncated to max_seq_length, special tokens added,
    /// not padded.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, EmbedError> {
        texts
            .iter()
            .map(|t| {
                let text = if self.config.do_lower_case {
                    t.to_lowercase()
                } else {
                    (*t).to_owned()
                };
                self.tokenizer
                    .encode(text, true)
                    .map_err(|e| EmbedError::Tokenizer(e.to_string()))
            })
            .collect()
    }

    /// Embeds texts in one forward pass (callers batch; see [`crate::EmbedQueue`]).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self.tokenize(texts)?;
        let refs: Vec<&Encoding> = encodings.iter().collect();
        self.embed_encodings(&refs)
    }

    /// Runs one padded batch: pads to the longest encoding, masks the
    /// padding in attention and pooling.
    pub fn embed_encodings(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if encodings.is_empty() {
            return Ok(Vec::new());
        }
        let batch = encodings.len();
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![self.pad_id; batch * len];
        let mut types = vec![0u32; batch * len];
        let mut mask = vec![0u32; batch * len];
        for (row, e) in encodings.iter().enumerate() {
            let at = row * len;
            ids[at..at + e.len()].copy_from_slice(e.get_ids());
            types[at..at + e.len()].copy_from_slice(e.get_type_ids());
            mask[at..at + e.len()].copy_from_slice(e.get_attention_mask());
        }
        let hidden = self.encoder.forward(&ids, &types, &mask, batch, len)?;
        let d = self.dimension();
        Ok((0..batch)
            .map(|b| {
                let rows = &hidden[b * len * d..(b + 1) * len * d];
                let mut v = pool(self.config.pooling, rows, &mask[b * len..(b + 1) * len], d);
                if self.config.normalize {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }
}

/// Pools one sequence's token vectors (`len` rows of `d`) under its mask.
fn pool(pooling: Pooling, rows: &[f32], mask: &[u32], d: usize) -> Vec<f32> {
    let tokens = rows
        .chunks_exact(d)
        .zip(mask)
        .filter(|(_, &m)| m != 0)
        .map(|(r, _)| r);
    match pooling {
        Pooling::Cls => rows[..d].to_vec(),
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let mut sum = vec![0f32; d];
            let mut count = 0usize;
            for r in tokens {
                sum.iter_mut().zip(r).for_each(|(s, x)| *s += x);
                count += 1;
            }
            let divisor = if pooling == Pooling::Mean {
                (count as f32).max(1e-9)
            } else {
                (count as f32).sqrt().max(1e-9)
            };
            sum.iter_mut().for_each(|s| *s /= divisor);
            sum
        }
        Pooling::Max => {
            let mut max = vec![f32::NEG_INFINITY; d];
            for r in tokens {
                max.iter_mut().zip(r).for_each(|(m, x)| *m = m.max(*x));
            }
            max
        }
    }
}
