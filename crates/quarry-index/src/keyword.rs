//! The keyword retriever: a tantivy index of chunk titles and texts, scored
//! with BM25 through an English analyzer (lower-casing, stop words, Porter
//! stemming).
//!
//! Commits are explicit and the reader reloads right after each, so a
//! search that follows an acknowledged write sees it (tantivy's default
//! reader would reload later, on a timer). Metadata filters run inside the
//! collector on the chunk-id fast field, so a selective filter still fills
//! `k` hits when enough chunks match.

use std::collections::HashSet;
use std::sync::Arc;

use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use crate::fusion::Ranked;

const ANALYZER: &str = "quarry_en";
/// Indexing memory per writer; tantivy requires at least 15 MB per thread.
const WRITER_MEMORY: usize = 50_000_000;

/// Keyword index errors are tantivy's.
pub type KeywordError = tantivy::TantivyError;

/// One collection's keyword index.
pub struct KeywordIndex {
    reader: IndexReader,
    writer: IndexWriter,
    chunk_id: Field,
    title: Field,
    text: Field,
    analyzer: TextAnalyzer,
}

fn english() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

impl KeywordIndex {
    /// A new index held in memory.
    pub fn in_memory() -> Result<Self, KeywordError> {
        let mut schema = Schema::builder();
        let chunk_id = schema.add_u64_field(
            "chunk_id",
            NumericOptions::default().set_indexed().set_fast(),
        );
        let text_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let title = schema.add_text_field("title", text_options.clone());
        let text = schema.add_text_field("text", text_options);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, english());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        Ok(Self {
            reader,
            writer,
            chunk_id,
            title,
            text,
            analyzer: english(),
        })
    }

    /// Stages chunks for indexing (visible after [`KeywordIndex::commit`]).
    pub fn add(&mut self, chunks: &[(u64, &str, &str)]) -> Result<(), KeywordError> {
        for (id, title, text) in chunks {
            self.writer.add_document(doc!(
                self.chunk_id => *id,
                self.title => *title,
                self.text => *text,
            ))?;
        }
        Ok(())
    }

    /// Stages deletion of chunks.
    pub fn remove(&mut self, ids: &[u64]) {
        for id in ids {
            self.writer
                .delete_term(Term::from_field_u64(self.chunk_id, *id));
        }
    }

    /// Commits staged changes and makes them visible to searches at once.
    pub fn commit(&mut self) -> Result<(), KeywordError> {
        self.writer.commit()?;
        self.reader.reload()
    }

    /// Chunks in the committed index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the committed index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The query as BM25 sees it: every analysed term, in title or text,
    /// any of them may match. The text is a user's question, never parsed
    /// as a query language, and a question of only stop words matches
    /// nothing (tantivy's lenient parser would match everything).
    fn query(&self, text: &str) -> Option<BooleanQuery> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        if terms.is_empty() {
            return None;
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .flat_map(|t| [(self.title, t), (self.text, t)])
            .map(|(field, t)| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        Some(BooleanQuery::new(clauses))
    }

    /// The `k` best chunks for `query` by BM25, restricted to `allowed`
    /// when given.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        allowed: Option<Arc<HashSet<u64>>>,
    ) -> Result<Vec<Ranked>, KeywordError> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let Some(query) = self.query(query) else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(k).order_by_score();
        let hits = match allowed {
            Some(allowed) => searcher.search(
                &query,
                &FilterCollector::new(
                    "chunk_id".to_owned(),
                    move |id: u64| allowed.contains(&id),
                    top,
                ),
            )?,
            None => searcher.search(&query, &top)?,
        };
        hits.into_iter()
            .map(|(score, address)| {
                let ids = searcher
                    .segment_reader(address.segment_ord)
                    .fast_fields()
                    .u64("chunk_id")?;
                let id = ids.first(address.doc_id).ok_or_else(|| {
                    tantivy::TantivyError::InternalError("a chunk without chunk_id".into())
                })?;
                Ok(Ranked { id, score })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(hits: &[Ranked]) -> Vec<u64> {
        hits.iter().map(|h| h.id).collect()
    }

    #[test]
    fn bm25_with_stemming_and_read_your_writes() {
        let mut idx = KeywordIndex::in_memory().unwrap();
        idx.add(&[
            (1, "", "The cats are running in the garden"),
            (2, "Dogs", "A dog barks at the mailman"),
            (3, "", "Quantum computing uses qubits"),
        ])
        .unwrap();
        assert!(
            idx.search("cat", 10, None).unwrap().is_empty(),
            "not visible before commit"
        );
        idx.commit().unwrap();
        assert_eq!(idx.len(), 3);
        // "cat" matches "cats" and "run" matches "running" through stemming.
        assert_eq!(ids(&idx.search("cat run", 10, None).unwrap()), [1]);
        assert_eq!(
            ids(&idx.search("dogs", 10, None).unwrap()),
            [2],
            "titles are searched"
        );
        // Stop words alone match nothing; syntax characters do not fail.
        assert!(idx.search("the a", 10, None).unwrap().is_empty());
        assert_eq!(ids(&idx.search("qubits AND (", 10, None).unwrap()), [3]);

        idx.remove(&[1]);
        idx.commit().unwrap();
        assert!(idx.search("cat", 10, None).unwrap().is_empty());
    }

    #[test]
    fn a_filter_matching_one_percent_still_returns_k_hits() {
        let mut idx = KeywordIndex::in_memory().unwrap();
        let texts: Vec<String> = (0..1000)
            .map(|i| format!("retrieval passage number {i}"))
            .collect();
        let chunks: Vec<(u64, &str, &str)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64 + 1, "", t.as_str()))
            .collect();
        idx.add(&chunks).unwrap();
        idx.commit().unwrap();
        let allowed: Arc<HashSet<u64>> = Arc::new((1..=1000).filter(|id| id % 100 == 0).collect());
        let hits = idx
            .search("retrieval passage", 10, Some(Arc::clone(&allowed)))
            .unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| allowed.contains(&h.id)));
    }
}
