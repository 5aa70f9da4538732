//! The model behind the generation queue, as a trait: what the queue's
//! thread needs from a decoder (its context window, the cache a token
//! takes, a new sequence's state, and one forward pass over several
//! sequences). [`crate::LlamaModel`] (llama and qwen2) is the real one;
//! tests plug in a scripted one, and a new model family is a new
//! implementation, not a new queue. Tokenizing, templates, sampling,
//! streaming and the batching of sequences stay in the queue, shared by
//! every decoder.

use std::any::Any;

use crate::llama::BatchStep;
use crate::{GenerateError, KvCache, LlamaModel};

/// A decoder-only language model driven by the generation thread.
pub trait Decoder: Send {
    /// The context window, in tokens.
    fn context_length(&self) -> usize;
    /// Bytes of cache one token of a sequence takes.
    fn kv_bytes_per_token(&self) -> usize;
    /// A new sequence's state, with room for about `tokens` tokens.
    fn sequence(&self, tokens: usize) -> Box<dyn Sequence>;
    /// A new sequence holding the first `len` tokens of `sequence` (a copy
    /// of that prefix's cache), with room for about `tokens`; `None` when
    /// this decoder cannot copy a cache (then prompts are read whole).
    fn fork(
        &self,
        sequence: &mut dyn Sequence,
        len: usize,
        tokens: usize,
    ) -> Option<Box<dyn Sequence>> {
        let _ = (sequence, len, tokens);
        None
    }
    /// Runs each step's tokens at its sequence's next positions, all in
    /// one pass; returns, per step, the next-token logits after its last
    /// token when it asked for them. A sequence's logits must not depend
    /// on which others share the pass.
    fn forward(&self, steps: &mut [Step<'_>]) -> Result<Vec<Option<Vec<f32>>>, GenerateError>;
}

/// One sequence's state (its cache and position), made by its decoder's
/// [`Decoder::sequence`].
pub trait Sequence: Send {
    /// Tokens it holds.
    fn len(&self) -> usize;
    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// For its decoder to reach its own type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// One sequence's share of a forward pass.
pub struct Step<'a> {
    /// The sequence.
    pub sequence: &'a mut dyn Sequence,
    /// Its next tokens.
    pub tokens: &'a [u32],
    /// Whether to return the logits after its last token.
    pub logits: bool,
}

impl Sequence for KvCache {
    fn len(&self) -> usize {
        KvCache::len(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Decoder for LlamaModel {
    fn context_length(&self) -> usize {
        self.config().context_length
    }

    fn kv_bytes_per_token(&self) -> usize {
        LlamaModel::kv_bytes_per_token(self)
    }

    fn sequence(&self, tokens: usize) -> Box<dyn Sequence> {
        Box::new(self.new_cache(tokens))
    }

    fn fork(
        &self,
        sequence: &mut dyn Sequence,
        len: usize,
        tokens: usize,
    ) -> Option<Box<dyn Sequence>> {
        let cache = sequence.as_any_mut().downcast_mut::<KvCache>()?;
        (len <= cache.len()).then(|| {
            Box::new(cache.prefix(len, tokens.min(self.config().context_length)))
                as Box<dyn Sequence>
        })
    }

    fn forward(&self, steps: &mut [Step<'_>]) -> Result<Vec<Option<Vec<f32>>>, GenerateError> {
        let mut batch = Vec::with_capacity(steps.len());
        for step in steps.iter_mut() {
            let cache = step
                .sequence
                .as_any_mut()
                .downcast_mut::<KvCache>()
                .ok_or_else(|| GenerateError::Model("a sequence from another decoder".into()))?;
            batch.push(BatchStep {
                tokens: step.tokens,
                cache,
                logits: step.logits,
            });
        }
        self.forward_batch(&mut batch)
    }
}
