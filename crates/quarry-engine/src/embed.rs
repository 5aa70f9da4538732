//! Embedding texts on request: limits first, then the model threads.

use quarry_core::InvalidArgument;

use crate::{Engine, Result};

/// Limits on one Embed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedLimits {
    /// Most texts in one request.
    pub max_texts: usize,
    /// Longest text, in bytes of UTF-8.
    pub max_text_bytes: usize,
}

impl Default for EmbedLimits {
    fn default() -> Self {
        Self {
            max_texts: 256,
            max_text_bytes: 32 * 1024,
        }
    }
}

/// Vectors and what made them.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// The model's source string.
    pub model: String,
    /// The vectors' dimension.
    pub dimension: usize,
    /// Tokens the texts were cut into (without the model's special
    /// tokens; a text longer than the model's window counts whole).
    pub tokens: u64,
}

impl Engine {
    /// Embeds texts with the server's sentence embedder.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embeddings> {
        let limits = self.inner.embed_limits;
        if texts.is_empty() {
            return Err(InvalidArgument::new("texts", "at least one text is required").into());
        }
        if texts.len() > limits.max_texts {
            return Err(InvalidArgument::new(
                "texts",
                format!(
                    "has {} texts; the limit is {}",
                    texts.len(),
                    limits.max_texts
                ),
            )
            .into());
        }
        if let Some((i, t)) = texts
            .iter()
            .enumerate()
            .find(|(_, t)| t.len() > limits.max_text_bytes)
        {
            return Err(InvalidArgument::new(
                format!("texts[{i}]"),
                format!(
                    "is {} bytes; the limit is {} bytes",
                    t.len(),
                    limits.max_text_bytes
                ),
            )
            .into());
        }
        let tokenizer = self.inner.embedder.counting_tokenizer();
        let counted: Vec<String> = texts.clone();
        // Tokenizing is CPU work: off the async workers, beside the model.
        let tokens = tokio::task::spawn_blocking(move || {
            counted
                .iter()
                .map(|t| {
                    tokenizer
                        .encode(t.as_str(), false)
                        .map_or(0, |e| e.len() as u64)
                })
                .sum::<u64>()
        });
        let vectors = self.inner.embedder.embed(texts).await?;
        let tokens = tokens
            .await
            .map_err(|e| crate::EngineError::Internal(format!("token count failed: {e}")))?;
        Ok(Embeddings {
            vectors,
            model: self.inner.embed_model.clone(),
            dimension: self.inner.embedder.dimension(),
            tokens,
        })
    }
}
