//! The keyword retriever's vectors, computed by Quarry: BM25's term
//! weights of a chunk as a sparse vector, whose collection applies the IDF
//! modifier on the Qdrant side; a query is its distinct terms, each of
//! weight 1. Qdrant then scores `sum(idf(t) * tf_weight(t, chunk))`: BM25.
//!
//! Why Quarry computes them rather than Qdrant's `qdrant/bm25` inference:
//! the terms are the collection language's analyzer's (tantivy's, as on
//! the embedded backend: stop words, Snowball stemmers, CJK pairs), so both
//! backends read a text alike, rank alike, and the grounded-answer verifier
//! can ask the document frequency of the same terms (kept in the `w`
//! payload list; Qdrant has no API for a sparse dimension's statistics).
//!
//! Title and text are two fields, as in tantivy: title terms have sparse
//! dimensions of their own, so Qdrant's IDF counts them per field, and a
//! query asks each term in both. The one difference from tantivy's BM25:
//! the average field lengths are constants of the collection, measured on
//! its first write (Qdrant's own inference takes a configured constant),
//! because live averages would change every stored vector.

use std::collections::BTreeMap;

use quarry_core::Language;
use quarry_index::analyzer::Terms;

use crate::ids::term_dimension;

/// BM25's term-frequency saturation (tantivy's value).
pub const K1: f32 = 1.2;
/// BM25's length normalisation (tantivy's value).
pub const B: f32 = 0.75;

/// A sparse vector: dimensions and weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sparse {
    /// Dimensions, ascending.
    pub indices: Vec<u32>,
    /// Their weights.
    pub values: Vec<f32>,
}

impl Sparse {
    fn from_map(map: BTreeMap<u32, f32>) -> Self {
        let (indices, values) = map.into_iter().unzip();
        Self { indices, values }
    }
}

/// The average lengths (in terms) a collection's BM25 weights assume.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Averages {
    /// Of a chunk's text.
    pub text: f32,
    /// Of a document's title.
    pub title: f32,
}

/// The dimension of a title term: apart from the text's, so that Qdrant's
/// IDF of it counts titles, as tantivy's per-field BM25 does.
fn title_dimension(term: &str) -> u32 {
    term_dimension(&format!("\u{1}title\u{1}{term}"))
}

/// BM25's term-frequency part for `tf` occurrences in a field of `len`
/// terms whose average is `avg`.
fn weight(tf: f32, len: usize, avg: f32) -> f32 {
    tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len as f32 / avg.max(1.0)))
}

/// Turns chunks and queries into sparse vectors, in one language.
pub struct Keywords {
    terms: Terms,
    avg: Averages,
}

impl Keywords {
    /// Vectors for a collection in `language` whose fields average `avg`.
    pub fn new(language: Language, avg: Averages) -> Self {
        Self {
            terms: Terms::new(language),
            avg,
        }
    }

    /// A chunk's vector and the distinct terms of its text. Title and
    /// text are two fields, as in tantivy: each term's weight uses its
    /// field's length, and title terms have dimensions of their own (a
    /// query asks both), so that the score is the sum of the two fields'
    /// BM25. The verifier's word weights count chunks by the text's terms,
    /// as the embedded backend counts its text field.
    pub fn chunk(&mut self, title: &str, text: &str) -> (Sparse, Vec<String>) {
        let mut dims = BTreeMap::new();
        let text_terms = self.terms.of(text);
        let title_terms = self.terms.of(title);
        for (terms, avg, dim) in [
            (
                &text_terms,
                self.avg.text,
                term_dimension as fn(&str) -> u32,
            ),
            (&title_terms, self.avg.title, title_dimension),
        ] {
            let mut tf: BTreeMap<&str, u32> = BTreeMap::new();
            for t in terms.iter() {
                *tf.entry(t).or_default() += 1;
            }
            for (term, f) in tf {
                // Two terms on one dimension (a hash collision) add up.
                *dims.entry(dim(term)).or_insert(0.0) += weight(f as f32, terms.len(), avg);
            }
        }
        let mut distinct = text_terms;
        distinct.sort();
        distinct.dedup();
        (Sparse::from_map(dims), distinct)
    }

    /// How many terms a chunk's text and its title have.
    pub fn count(&mut self, title: &str, text: &str) -> (usize, usize) {
        (self.terms.of(text).len(), self.terms.of(title).len())
    }

    /// A query's vector: each distinct term once, in the text and in the
    /// title. `None` when the query has no term (only stop words), which
    /// matches nothing, as on the embedded backend.
    pub fn query(&mut self, text: &str) -> Option<Sparse> {
        let mut dims = BTreeMap::new();
        for t in self.terms.of(text) {
            dims.insert(term_dimension(&t), 1.0);
            dims.insert(title_dimension(&t), 1.0);
        }
        (!dims.is_empty()).then(|| Sparse::from_map(dims))
    }

    /// The first term of `word` (how the keyword index reads it), `None`
    /// for a stop word.
    pub fn term(&mut self, word: &str) -> Option<String> {
        self.terms.of(word).into_iter().next()
    }
}

/// BM25's inverse document frequency, as tantivy computes it.
pub fn idf(docs: u64, with_term: u64) -> f32 {
    let (n, df) = (docs as f32, with_term as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_terms_saturate_and_stop_words_vanish() {
        let mut k = Keywords::new(
            Language::English,
            Averages {
                text: 10.0,
                title: 2.0,
            },
        );
        let (v, terms) = k.chunk("Dogs", "cats cats cats run");
        assert_eq!(terms, ["cat", "run"], "the text's terms only");
        assert!(
            v.indices.contains(&title_dimension("dog")),
            "the title is a field"
        );
        assert!(!v.indices.contains(&term_dimension("dog")));
        let cat = v.values[v
            .indices
            .iter()
            .position(|&d| d == term_dimension("cat"))
            .unwrap()];
        let run = v.values[v
            .indices
            .iter()
            .position(|&d| d == term_dimension("run"))
            .unwrap()];
        assert!(cat > run && cat < 3.0 * run, "{cat} {run}");
        assert!(k.query("the a of").is_none());
        assert_eq!(
            k.query("running cats cat").unwrap().indices.len(),
            4,
            "two terms, each in text and title"
        );
        assert_eq!(k.term("Running").as_deref(), Some("run"));
    }
}
