//! Turning tokens into text deltas as they are generated, never emitting
//! half a character and never emitting a stop sequence.
//!
//! A byte-level BPE token can end in the middle of a multi-byte UTF-8
//! character (an emoji is often three or four tokens); decoding such a
//! prefix yields U+FFFD. The stream decodes a short window of recent
//! tokens, and holds text back while it ends in U+FFFD. Text that could be
//! the start of a stop sequence is also held back until it either becomes
//! one (generation ends, the stop sequence is not emitted) or cannot.

use tokenizers::Tokenizer;

use crate::GenerateError;

/// What one token added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Text to emit (may be empty while a character or a possible stop
    /// sequence is incomplete).
    Text(String),
    /// A stop sequence appeared: emit this text before it, then stop.
    Stop(String),
}

/// The decoder of one generation.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the window that is decoded for context.
    prefix_offset: usize,
    /// Tokens before this index have been turned into text.
    read_offset: usize,
    stop: Vec<String>,
    /// Decoded text not yet emitted (held for a possible stop sequence).
    pending: String,
}

impl<'a> TextStream<'a> {
    /// A stream that ends at the first of `stop`.
    pub fn new(tokenizer: &'a Tokenizer, stop: Vec<String>) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            stop,
            pending: String::new(),
        }
    }

    fn decode(&self, ids: &[u32]) -> Result<String, GenerateError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| GenerateError::Tokenizer(e.to_string()))
    }

    /// Adds a generated token.
    pub fn push(&mut self, id: u32) -> Result<Delta, GenerateError> {
        self.ids.push(id);
        let prefix = self.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let text = self.decode(&self.ids[self.prefix_offset..])?;
        if text.len() > prefix.len()
            && !text.ends_with('\u{FFFD}')
            && text.is_char_boundary(prefix.len())
        {
            self.pending.push_str(&text[prefix.len()..]);
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
        }
        Ok(self.release())
    }

    /// Emits what cannot be (the start of) a stop sequence.
    fn release(&mut self) -> Delta {
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let before = self.pending[..at].to_owned();
            self.pending.clear();
            return Delta::Stop(before);
        }
        // Hold back the longest tail that starts some stop sequence.
        let mut keep = 0;
        for s in &self.stop {
            for (i, _) in self.pending.char_indices() {
                let tail = &self.pending[i..];
                if s.starts_with(tail) {
                    keep = keep.max(tail.len());
                    break;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        Delta::Text(out)
    }

    /// The text still held when generation ends for another reason
    /// (length, end of turn): a partial stop sequence is real text then.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}
