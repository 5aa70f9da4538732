//! A bounded cache of single-word embeddings.
//!
//! Evidence alignment embeds the question's focus words and the words of
//! the best evidence sentences on every grounded or extractive Ask. Words
//! recur far more than sentences do (a few thousand cover most text), so
//! their vectors are kept: an Ask then embeds only the words it has not
//! seen. When the cache is full it is emptied and refilled, which keeps it
//! bounded without bookkeeping per entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Words kept (each a few hundred floats: about 25 MB at 384 dimensions).
pub(crate) const CAPACITY: usize = 16_384;

/// Word -> vector, shared by every Ask of an engine.
#[derive(Default)]
pub(crate) struct WordVectors {
    map: Mutex<HashMap<String, Arc<[f32]>>>,
}

impl WordVectors {
    /// The cached vectors of `words`, `None` where missing.
    pub fn get(&self, words: &[String]) -> Vec<Option<Arc<[f32]>>> {
        let map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        words.iter().map(|w| map.get(w).cloned()).collect()
    }

    /// Remembers vectors of words.
    pub fn put(&self, words: &[String], vectors: &[Vec<f32>]) {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() + words.len() > CAPACITY {
            map.clear();
        }
        for (w, v) in words.iter().zip(vectors) {
            map.insert(w.clone(), Arc::from(v.as_slice()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_remembered_and_the_cache_stays_bounded() {
        let c = WordVectors::default();
        let words = vec!["lighthouse".to_owned(), "keeper".to_owned()];
        assert!(c.get(&words).iter().all(Option::is_none));
        c.put(&words, &[vec![1.0], vec![2.0]]);
        let got = c.get(&words);
        assert_eq!(got[1].as_deref(), Some(&[2.0][..]));
        let many: Vec<String> = (0..CAPACITY).map(|i| format!("w{i}")).collect();
        let vectors = vec![vec![0.0]; CAPACITY];
        c.put(&many, &vectors);
        assert!(c.map.lock().unwrap().len() <= CAPACITY);
    }
}
