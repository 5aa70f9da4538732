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
//! The one difference from tantivy's BM25: the average chunk length is a
//! constant of the collection, measured on its first write (Qdrant's own
//! inference takes a configured constant), because a live average would
//! change every stored vector; and title and text count as one field.

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

/// Turns chunks and queries into sparse vectors, in one language.
pub struct Keywords {
    terms: Terms,
    avg_len: f32,
}

impl Keywords {
    /// Vectors for a collection in `language` whose chunks average
    /// `avg_len` terms.
    pub fn new(language: Language, avg_len: f32) -> Self {
        Self {
            terms: Terms::new(language),
            avg_len: avg_len.max(1.0),
        }
    }

    /// A chunk's vector (title and text read as one field) and its
    /// distinct terms.
    pub fn chunk(&mut self, title: &str, text: &str) -> (Sparse, Vec<String>) {
        let mut tf: BTreeMap<String, u32> = BTreeMap::new();
        let mut len = 0usize;
        for t in self.terms.of(title).into_iter().chain(self.terms.of(text)) {
            len += 1;
            *tf.entry(t).or_default() += 1;
        }
        let norm = K1 * (1.0 - B + B * len as f32 / self.avg_len);
        let mut dims = BTreeMap::new();
        for (term, &f) in &tf {
            let f = f as f32;
            // Two terms on one dimension (a hash collision) add up.
            *dims.entry(term_dimension(term)).or_insert(0.0) += f * (K1 + 1.0) / (f + norm);
        }
        (Sparse::from_map(dims), tf.into_keys().collect())
    }

    /// How many terms a chunk has (title and text).
    pub fn count(&mut self, title: &str, text: &str) -> usize {
        self.terms.of(title).len() + self.terms.of(text).len()
    }

    /// A query's vector: each distinct term once. `None` when the query
    /// has no term (only stop words), which matches nothing, as on the
    /// embedded backend.
    pub fn query(&mut self, text: &str) -> Option<Sparse> {
        let dims: BTreeMap<u32, f32> = self
            .terms
            .of(text)
            .iter()
            .map(|t| (term_dimension(t), 1.0))
            .collect();
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
        let mut k = Keywords::new(Language::English, 10.0);
        let (v, terms) = k.chunk("", "cats cats cats run");
        assert_eq!(terms, ["cat", "run"]);
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
        assert_eq!(k.query("running cats cat").unwrap().indices.len(), 2);
        assert_eq!(k.term("Running").as_deref(), Some("run"));
    }
}
