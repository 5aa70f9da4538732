//! The sentence embedder: tokenizer, candle BERT encoder, pooling and
//! normalisation. Not thread-safe by design: one instance per model thread.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{EmbedError, Pooling, SentenceConfig};

/// A loaded sentence-embedding model.
pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    config: SentenceConfig,
    dimension: usize,
    pad_id: u32,
    device: Device,
}

impl SentenceEmbedder {
    /// Loads the model in `dir` (config.json, tokenizer.json,
    /// model.safetensors, and the sentence-transformers files if present).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let device = Device::Cpu;
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
            .unwrap_or(bert.pad_token_id as u32);
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
        // SAFETY: the file is mapped read-only and Quarry never writes model
        // files while serving; a concurrent writer would be a user error.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &bert).map_err(|e| EmbedError::file(&weights, e))?;
        Ok(Self {
            model,
            tokenizer,
            config,
            dimension: bert.hidden_size,
            pad_id,
            device,
        })
    }

    /// The vectors' dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
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
        let ids = Tensor::from_vec(ids, (batch, len), &self.device)?;
        let types = Tensor::from_vec(types, (batch, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch, len), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let pooled = self.pool(&hidden, &mask)?;
        let pooled = if self.config.normalize {
            let norm = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12, f32::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2::<f32>()?)
    }

    fn pool(&self, hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (b, l, 1)
        match self.config.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (b, d)
                let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?; // (b, 1)
                let divisor = if self.config.pooling == Pooling::Mean {
                    counts
                } else {
                    counts.sqrt()?
                };
                summed.broadcast_div(&divisor)
            }
            Pooling::Max => {
                // Padding gets a very negative value so it never wins.
                let penalty = ((mask.ones_like()? - &mask)? * -1e9)?;
                hidden.broadcast_add(&penalty)?.max(D::Minus2)
            }
        }
    }
}
