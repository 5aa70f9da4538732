//! The model behind the embedding queue, as a trait (text-embeddings-
//! inference's `Backend`): what one model thread needs from a sentence
//! embedder. [`crate::SentenceEmbedder`] (candle) is the real one; tests
//! plug in small deterministic ones, and a new model family is a new
//! implementation, not a new queue.

use tokenizers::{Encoding, Tokenizer};

use crate::EmbedError;

/// A sentence-embedding model driven by one queue thread. Not `Sync`: each
/// thread owns its instance.
pub trait Embedder: Send {
    /// Tokenizes texts as the model reads them: truncated to
    /// [`max_seq_length`](Self::max_seq_length), special tokens added, not
    /// padded.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, EmbedError>;
    /// Embeds one batch of encodings (the queue sorts and sizes batches).
    fn embed_encodings(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The vectors' dimension.
    fn dimension(&self) -> usize;
    /// Longest input in tokens.
    fn max_seq_length(&self) -> usize;
    /// The model's tokenizer, from which the queue makes the token counter
    /// callers measure text with (chunking).
    fn tokenizer(&self) -> &Tokenizer;
}

impl Embedder for crate::SentenceEmbedder {
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, EmbedError> {
        crate::SentenceEmbedder::tokenize(self, texts)
    }

    fn embed_encodings(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        crate::SentenceEmbedder::embed_encodings(self, batch)
    }

    fn dimension(&self) -> usize {
        crate::SentenceEmbedder::dimension(self)
    }

    fn max_seq_length(&self) -> usize {
        self.config().max_seq_length
    }

    fn tokenizer(&self) -> &Tokenizer {
        crate::SentenceEmbedder::tokenizer(self)
    }
}
