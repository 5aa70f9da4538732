//! The keyword analyzers, one per collection language: how text is cut
//! into terms for BM25, at indexing and at query time alike.
//!
//! - Stemmed languages: words (letters and digits of any script),
//!   lower-cased, overlong tokens dropped, the language's stop words
//!   removed where tantivy ships a list, then its Snowball stemmer.
//! - `simple`: words lower-cased, nothing else, for any language written
//!   with spaces between words.
//! - `cjk`: Chinese, Japanese and Korean are written without spaces, and a
//!   dictionary segmenter is a large dependency; like Lucene's CJK
//!   analyzer, runs of ideographs, kana and hangul become overlapping
//!   character pairs (a single character stays a term), and everything
//!   else is cut into lower-cased words.
//!
//! Each analyzer is registered in every index under its own name, and a
//! collection's schema names the one it was created with, so the language
//! survives restarts and rebuilds without being stored twice.

use quarry_core::Language;
use tantivy::tokenizer::{
    Language as Stemming, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
    TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The analyzer's registered name for `language`: `quarry_en`, `quarry_ar`...
pub fn analyzer_name(language: Language) -> String {
    format!("quarry_{}", language.code())
}

/// The language an analyzer name stands for.
pub fn language_of(name: &str) -> Option<Language> {
    let code = name.strip_prefix("quarry_")?;
    Language::ALL.into_iter().find(|l| l.code() == code)
}

fn stemming(language: Language) -> Option<Stemming> {
    Some(match language {
        Language::Arabic => Stemming::Arabic,
        Language::Danish => Stemming::Danish,
        Language::Dutch => Stemming::Dutch,
        Language::English => Stemming::English,
        Language::Finnish => Stemming::Finnish,
        Language::French => Stemming::French,
        Language::German => Stemming::German,
        Language::Greek => Stemming::Greek,
        Language::Hungarian => Stemming::Hungarian,
        Language::Italian => Stemming::Italian,
        Language::Norwegian => Stemming::Norwegian,
        Language::Portuguese => Stemming::Portuguese,
        Language::Romanian => Stemming::Romanian,
        Language::Russian => Stemming::Russian,
        Language::Spanish => Stemming::Spanish,
        Language::Swedish => Stemming::Swedish,
        Language::Tamil => Stemming::Tamil,
        Language::Turkish => Stemming::Turkish,
        Language::Simple | Language::Cjk => return None,
    })
}

/// The analyzer of `language`.
pub fn analyzer(language: Language) -> TextAnalyzer {
    if language == Language::Cjk {
        return TextAnalyzer::builder(CjkTokenizer)
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .build();
    }
    let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .dynamic()
        .filter_dynamic(RemoveLongFilter::limit(40))
        .filter_dynamic(LowerCaser);
    if let Some(stem) = stemming(language) {
        if let Some(stop) = StopWordFilter::new(stem) {
            builder = builder.filter_dynamic(stop);
        }
        builder = builder.filter_dynamic(Stemmer::new(stem));
    }
    builder.build()
}

/// A language's analyzer as a function from text to terms, for backends
/// that index keywords outside tantivy (the Qdrant backend builds its
/// sparse vectors from these terms, so both backends read text alike).
pub struct Terms(TextAnalyzer);

impl Terms {
    /// The terms of `language`.
    pub fn new(language: Language) -> Self {
        Self(analyzer(language))
    }

    /// Every term of `text`, in order, repeats kept.
    pub fn of(&mut self, text: &str) -> Vec<String> {
        let mut stream = self.0.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }
}

/// Whether `c` is written without spaces between words: CJK ideographs,
/// kana, hangul.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // radicals
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x3130..=0x318F    // hangul compatibility jamo
        | 0x31F0..=0x31FF    // katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width katakana
        | 0x20000..=0x2FA1F) // extensions B-F and supplements
}

/// Cuts CJK runs into overlapping character pairs and other text into
/// words (letters and digits).
#[derive(Clone, Copy, Debug, Default)]
pub struct CjkTokenizer;

/// The tokens of one text, cut in advance (texts are chunks of a few
/// hundred tokens).
pub struct CjkTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream {
        let mut tokens = Vec::new();
        let mut push = |from: usize, to: usize| {
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position: tokens.len(),
                text: text[from..to].to_owned(),
                position_length: 1,
            });
        };
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let end_of = |i: usize| chars.get(i + 1).map_or(text.len(), |(j, _)| *j);
        let mut i = 0;
        while i < chars.len() {
            let (start, c) = chars[i];
            if is_cjk(c) {
                let mut j = i;
                while j < chars.len() && is_cjk(chars[j].1) {
                    j += 1;
                }
                if j - i == 1 {
                    push(start, end_of(i));
                } else {
                    for (k, (from, _)) in chars.iter().enumerate().take(j - 1).skip(i) {
                        push(*from, end_of(k + 1));
                    }
                }
                i = j;
            } else if c.is_alphanumeric() {
                let mut j = i;
                while j < chars.len() && chars[j].1.is_alphanumeric() && !is_cjk(chars[j].1) {
                    j += 1;
                }
                push(start, end_of(j - 1));
                i = j;
            } else {
                i += 1;
            }
        }
        CjkTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for CjkTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(language: Language, text: &str) -> Vec<String> {
        let mut a = analyzer(language);
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn each_language_stems_its_own_words() {
        assert_eq!(
            terms(Language::English, "The cats were running"),
            ["cat", "were", "run"]
        );
        assert_eq!(terms(Language::French, "Les maisons"), ["maison"]);
        assert_eq!(terms(Language::German, "Die Häuser"), ["haus"]);
        assert_eq!(
            terms(Language::Simple, "The Cats were Running"),
            ["the", "cats", "were", "running"]
        );
        // Arabic: "the libraries" and "library" share a stem.
        let a = terms(Language::Arabic, "المكتبات");
        let b = terms(Language::Arabic, "مكتبة");
        assert_eq!(a, b, "{a:?} {b:?}");
    }

    #[test]
    fn cjk_text_becomes_pairs_and_other_text_words() {
        assert_eq!(
            terms(Language::Cjk, "東京都 Tokyo 2020年"),
            ["東京", "京都", "tokyo", "2020", "年"]
        );
        assert_eq!(terms(Language::Cjk, "日本"), ["日本"]);
        assert!(terms(Language::Cjk, "  ,, ").is_empty());
    }

    #[test]
    fn names_round_trip() {
        for l in Language::ALL {
            assert_eq!(language_of(&analyzer_name(l)), Some(l));
        }
        assert_eq!(language_of("default"), None);
    }
}
