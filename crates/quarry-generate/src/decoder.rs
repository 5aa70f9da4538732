//! The model behind the generation queue, as a trait: what the queue's
//! thread needs from a decoder (its context window, and a session that
//! runs tokens and returns next-token logits). [`crate::LlamaModel`]
//! (candle kernels, llama and qwen2) is the real one; tests plug in a
//! scripted one, and a new model family is a new implementation, not a
//! new queue. Tokenizing, templates, sampling and streaming stay in the
//! queue, shared by every decoder.

use crate::{GenerateError, KvCache, LlamaModel};

/// A decoder-only language model driven by the generation thread.
pub trait Decoder: Send {
    /// The context window, in tokens.
    fn context_length(&self) -> usize;
    /// A new sequence with room for about `tokens` tokens.
    fn session(&self, tokens: usize) -> Box<dyn Session + '_>;
}

/// One sequence being decoded: its cache and position.
pub trait Session {
    /// Runs `tokens` at the next positions; returns the next-token logits
    /// after the last one when `logits` is set.
    fn forward(&mut self, tokens: &[u32], logits: bool) -> Result<Option<Vec<f32>>, GenerateError>;
}

struct LlamaSession<'a> {
    model: &'a LlamaModel,
    cache: KvCache,
}

impl Session for LlamaSession<'_> {
    fn forward(&mut self, tokens: &[u32], logits: bool) -> Result<Option<Vec<f32>>, GenerateError> {
        self.model.forward(tokens, &mut self.cache, logits)
    }
}

impl Decoder for LlamaModel {
    fn context_length(&self) -> usize {
        self.config().context_length
    }

    fn session(&self, tokens: usize) -> Box<dyn Session + '_> {
        Box::new(LlamaSession {
            model: self,
            cache: self.new_cache(tokens),
        })
    }
}
