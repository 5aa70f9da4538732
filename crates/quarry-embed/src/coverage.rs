//! How well the embedder's vocabulary covers a text.
//!
//! A WordPiece vocabulary learnt on English cuts English words into a few
//! pieces (0.1 to 0.4 pieces per letter on the queries of three English
//! evaluation sets) but spells out scripts it barely knows one letter at a
//! time (about 1 per letter for Arabic, Cyrillic and Chinese queries). A
//! text spelled out letter by letter embeds to little more than noise, so
//! hybrid search should lean on the keyword index for it. The coverage is
//! 1 up to [`FULL_COVERAGE`] pieces per letter and falls linearly to 0 at
//! [`NO_COVERAGE`]; a multilingual vocabulary covers those scripts and
//! keeps its queries at 1.

use tokenizers::Tokenizer;

/// Pieces per letter up to which a text counts as fully covered.
pub const FULL_COVERAGE: f32 = 0.45;
/// Pieces per letter from which a text counts as not covered at all.
pub const NO_COVERAGE: f32 = 0.7;

/// The coverage of `text` by `tokenizer`'s vocabulary, 0 to 1 (1 for a
/// text without letters, or one the tokenizer cannot process).
pub fn coverage(tokenizer: &Tokenizer, text: &str) -> f32 {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    if letters == 0 {
        return 1.0;
    }
    let Ok(encoding) = tokenizer.encode(text, false) else {
        return 1.0;
    };
    // A word the vocabulary cannot spell at all is one unknown token: it
    // counts as one piece per letter, as unreadable as a spelled-out one.
    let pieces: usize = encoding
        .get_tokens()
        .iter()
        .zip(encoding.get_offsets())
        .map(|(t, &(from, to))| {
            if t.contains("UNK") {
                text.get(from..to)
                    .map_or(1, |w| w.chars().filter(|c| c.is_alphabetic()).count())
            } else {
                usize::from(t.trim_start_matches("##").chars().any(char::is_alphabetic))
            }
        })
        .sum();
    let per_letter = pieces as f32 / letters as f32;
    ((NO_COVERAGE - per_letter) / (NO_COVERAGE - FULL_COVERAGE)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    /// A WordPiece tokenizer that knows some English words and only single
    /// Arabic letters.
    fn tokenizer() -> Tokenizer {
        let mut vocab: Vec<String> = [
            "[UNK]", "the", "cat", "##s", "sat", "photo", "##syn", "##thesis",
        ]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
        for c in "ابتثجحخدذرزسشصضطظعغفقكلمنهويةى".chars() {
            vocab.push(c.to_string());
            vocab.push(format!("##{c}"));
        }
        let vocab: serde_json::Map<String, serde_json::Value> = vocab
            .into_iter()
            .enumerate()
            .map(|(i, w)| (w, serde_json::json!(i)))
            .collect();
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null,
            "decoder": null,
            "model": {
                "type": "WordPiece",
                "unk_token": "[UNK]",
                "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": vocab,
            },
        });
        Tokenizer::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn a_known_script_is_covered_and_a_spelled_out_one_is_not() {
        let t = tokenizer();
        assert_eq!(coverage(&t, "the cats sat"), 1.0);
        assert_eq!(coverage(&t, "photosynthesis"), 1.0);
        assert_eq!(coverage(&t, "المكتبة الكبيرة"), 0.0);
        assert_eq!(coverage(&t, "42 ?"), 1.0);
        // Words it cannot spell at all are not covered either.
        assert_eq!(coverage(&t, "Привет мир"), 0.0);
    }
}
