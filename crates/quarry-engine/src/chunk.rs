//! Token-aware chunking: documents are cut into pieces of at most N model
//! tokens with overlap, preferring paragraph, then sentence, then word
//! boundaries (text-splitter, measuring with the embedder's own tokenizer).

use quarry_embed::Tokenizer;
use text_splitter::{ChunkConfig, TextSplitter};

/// Cuts `text` into chunks of at most `size` tokens, consecutive chunks
/// sharing up to `overlap` tokens. `overlap` must be less than `size`.
pub fn chunk_text(tokenizer: &Tokenizer, text: &str, size: usize, overlap: usize) -> Vec<String> {
    let size = size.max(1);
    let config = ChunkConfig::new(size)
        .with_overlap(overlap.min(size - 1))
        .expect("overlap is below size")
        .with_sizer(tokenizer);
    TextSplitter::new(config)
        .chunks(text)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;

    use super::*;

    /// A word-level tokenizer over w0..w49 and '.', so token counts are
    /// easy to reason about.
    fn tokenizer() -> Tokenizer {
        let mut vocab: HashMap<String, u32> = (0..50).map(|i| (format!("w{i}"), i)).collect();
        vocab.insert("[UNK]".into(), 50);
        vocab.insert(".".into(), 51);
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut t = Tokenizer::new(model);
        t.with_pre_tokenizer(Some(Whitespace {}));
        t
    }

    fn count(t: &Tokenizer, s: &str) -> usize {
        t.encode(s, false).unwrap().len()
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec((0u32..50, 0u8..10), 1..200).prop_map(|words| {
            let mut s = String::new();
            for (w, sep) in words {
                s.push_str(&format!("w{w}"));
                s.push_str(match sep {
                    0 => ". ",
                    1 => ".\n\n",
                    _ => " ",
                });
            }
            s
        })
    }

    proptest! {
        #[test]
        fn chunks_fit_the_budget_and_lose_no_word(text in text(), size in 4usize..40, overlap_share in 0usize..50) {
            let t = tokenizer();
            let overlap = size * overlap_share / 100;
            let chunks = chunk_text(&t, &text, size, overlap);
            prop_assert!(!chunks.is_empty());
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for c in &chunks {
                prop_assert!(!c.trim().is_empty());
                prop_assert!(count(&t, c) <= size, "chunk of {} tokens over {size}: {c:?}", count(&t, c));
                for w in c.split(|ch: char| ch.is_whitespace() || ch == '.').filter(|w| !w.is_empty()) {
                    *seen.entry(w).or_default() += 1;
                }
            }
            let mut want: HashMap<&str, usize> = HashMap::new();
            for w in text.split(|ch: char| ch.is_whitespace() || ch == '.').filter(|w| !w.is_empty()) {
                *want.entry(w).or_default() += 1;
            }
            for (w, n) in want {
                prop_assert!(seen.get(w).copied().unwrap_or(0) >= n, "word {w} lost");
            }
        }
    }
}
