//! Content terms for lexical overlap: words lower-cased, possessives off,
//! stemmed with the English Snowball stemmer that the keyword index uses
//! ("revenues" and "revenue" are one term), function words and question
//! words dropped, numbers kept in a normal form so that "15,000" and
//! "15000" are one term.

use unicode_segmentation::UnicodeSegmentation;

/// Words that carry no content in a question or an answer: English
/// function words and the words questions are framed with.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "may",
    "might",
    "must",
    "shall",
    "many",
    "much",
    "s",
    "t",
    // question framing
    "tell",
    "please",
    "know",
    "called",
    "call",
    "name",
    "named",
    "kind",
    "type",
    "exactly",
    "according",
    "passage",
    "passages",
    "answer",
    "question",
    "say",
    "says",
    "said",
    "give",
    "list",
    "describe",
    "explain",
];

/// Whether `word` (lower case) is a function or question-framing word.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// A word's English Snowball stem (the stemmer tantivy's English
/// analyzer runs), possessives off: "revenues" and "revenue", "lived" and
/// "live" share one.
pub fn stem(word: &str) -> String {
    let w = word
        .strip_suffix("'s")
        .or_else(|| word.strip_suffix("’s"))
        .unwrap_or(word);
    let w = w.trim_end_matches(['\'', '’']);
    thread_local! {
        static ENGLISH: frostem::Stemmer = frostem::Stemmer::new(frostem::Algorithm::English);
    }
    ENGLISH.with(|s| s.stem(w).into_owned())
}

/// A number word's normal form: digits only, separators removed
/// ("15,000" -> "15000"), a trailing ".0" kept off.
fn number_term(word: &str) -> Option<String> {
    if !word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits: String = word.chars().filter(|c| *c != ',').collect();
    Some(digits)
}

/// The content terms of `text`, in order, repeats kept.
pub fn terms(text: &str) -> Vec<String> {
    terms_with_words(text).into_iter().map(|(t, _)| t).collect()
}

/// The content terms of `text` with the words they came from, in order.
pub fn terms_with_words(text: &str) -> Vec<(String, String)> {
    let text = crate::facts::strip_markers(text);
    text.unicode_words()
        .filter_map(|w| {
            let lower = w.to_lowercase();
            if let Some(n) = number_term(&lower) {
                return Some((n, w.to_owned()));
            }
            let base = lower
                .strip_suffix("'s")
                .or_else(|| lower.strip_suffix("’s"))
                .unwrap_or(&lower);
            if base.chars().count() < 2 && base.is_ascii() || is_stopword(base) {
                return None;
            }
            Some((stem(base), w.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_merge_inflections_only() {
        for (a, b) in [
            ("revenues", "revenue"),
            ("rates", "rate"),
            ("cities", "city"),
            ("boxes", "box"),
            ("walked", "walk"),
            ("building", "build"),
            ("lived", "live"),
            ("Japan's", "japan"),
        ] {
            assert_eq!(stem(&a.to_lowercase()), stem(b), "{a} {b}");
        }
        for w in ["glass", "status", "bus", "gas"] {
            assert_eq!(stem(w), w);
        }
    }

    #[test]
    fn terms_drop_function_words_and_keep_numbers() {
        assert_eq!(
            terms("What was Japan's unemployment rate in August 2025 [1]?"),
            ["japan", "unemploy", "rate", "august", "2025"]
        );
        assert_eq!(terms("15,000 lanterns"), ["15000", "lantern"]);
        assert_eq!(terms("ما هي عاصمة مصر"), ["ما", "هي", "عاصمة", "مصر"]);
    }
}
