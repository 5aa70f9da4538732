//! The keyword retriever: a tantivy index of chunk titles and texts, scored
//! with BM25 through the collection language's analyzer
//! ([`crate::analyzer`]).
//!
//! Commits are explicit and the reader reloads right after each, so a
//! search that follows an acknowledged write sees it (tantivy's default
//! reader would reload later, on a timer). Metadata filters run inside the
//! collector on the chunk-id fast field, so a selective filter still fills
//! `k` hits when enough chunks match.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use quarry_core::Language;
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use crate::analyzer::{analyzer, analyzer_name, language_of};
use crate::fusion::Ranked;
use crate::IndexError;
/// Indexing memory per writer; tantivy requires at least 15 MB per thread.
const WRITER_MEMORY: usize = 50_000_000;

/// One collection's keyword index.
pub struct KeywordIndex {
    reader: IndexReader,
    /// Always `Some` but in `drop`, which takes it to wait for merges.
    writer: Option<IndexWriter>,
    chunk_id: Field,
    title: Field,
    text: Field,
    analyzer: TextAnalyzer,
    language: Language,
}

/// The schema's fields.
struct Fields {
    chunk_id: Field,
    title: Field,
    text: Field,
}

fn schema(language: Language) -> Schema {
    let mut schema = Schema::builder();
    schema.add_u64_field(
        "chunk_id",
        NumericOptions::default().set_indexed().set_fast(),
    );
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(&analyzer_name(language))
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    schema.add_text_field("title", text_options.clone());
    schema.add_text_field("text", text_options);
    schema.build()
}

fn fields(schema: &Schema) -> Result<Fields, String> {
    let field = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| format!("the schema has no field {name:?}"))
    };
    Ok(Fields {
        chunk_id: field("chunk_id")?,
        title: field("title")?,
        text: field("text")?,
    })
}

impl KeywordIndex {
    /// A new index held in memory (tests and throw-away collections).
    pub fn in_memory(language: Language) -> Result<Self, IndexError> {
        let index = Index::create_in_ram(schema(language));
        let fields = fields(&index.schema()).expect("our own schema");
        Self::from_index(index, fields, language)
    }

    /// A new, empty index in `dir` for text in `language`, replacing
    /// whatever was there, committed at `seq`.
    pub fn create(dir: &Path, seq: u64, language: Language) -> Result<Self, IndexError> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IndexError::io(dir)(e)),
        }
        std::fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
        let index = Index::create_in_dir(dir, schema(language))?;
        let fields = fields(&index.schema()).expect("our own schema");
        let mut this = Self::from_index(index, fields, language)?;
        this.commit(seq)?;
        Ok(this)
    }

    /// Opens the index in `dir` with the sequence number of its last commit:
    /// `Ok(None)` when there is none, [`IndexError::Damaged`] when it
    /// cannot be used. Its language is the one its schema names.
    pub fn open(dir: &Path) -> Result<Option<(Self, u64)>, IndexError> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let damaged = |reason: String| IndexError::damaged(dir, reason);
        let index = Index::open_in_dir(dir).map_err(|e| damaged(e.to_string()))?;
        let fields = fields(&index.schema()).map_err(damaged)?;
        let tokenizer = match index.schema().get_field_entry(fields.text).field_type() {
            tantivy::schema::FieldType::Str(options) => options
                .get_indexing_options()
                .map(|o| o.tokenizer().to_owned()),
            _ => None,
        };
        let language = tokenizer.as_deref().and_then(language_of).ok_or_else(|| {
            damaged(format!(
                "its text field uses no Quarry analyzer ({tokenizer:?})"
            ))
        })?;
        let payload = index
            .load_metas()
            .map_err(|e| damaged(e.to_string()))?
            .payload;
        let seq = payload
            .as_deref()
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(|| {
                damaged(format!(
                    "commit payload {payload:?} is not a sequence number"
                ))
            })?;
        Ok(Some((Self::from_index(index, fields, language)?, seq)))
    }

    fn from_index(index: Index, fields: Fields, language: Language) -> Result<Self, IndexError> {
        index
            .tokenizers()
            .register(&analyzer_name(language), analyzer(language));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        Ok(Self {
            reader,
            writer: Some(writer),
            chunk_id: fields.chunk_id,
            title: fields.title,
            text: fields.text,
            analyzer: analyzer(language),
            language,
        })
    }

    /// The language its analyzer reads.
    pub fn language(&self) -> Language {
        self.language
    }

    fn writer(&self) -> &IndexWriter {
        self.writer.as_ref().expect("the writer lives until drop")
    }

    /// Stages chunks for indexing (visible after [`KeywordIndex::commit`]).
    pub fn add(&mut self, chunks: &[(u64, &str, &str)]) -> Result<(), IndexError> {
        for (id, title, text) in chunks {
            self.writer().add_document(doc!(
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
            self.writer()
                .delete_term(Term::from_field_u64(self.chunk_id, *id));
        }
    }

    /// Commits staged changes, recording `seq` (the last op-log sequence
    /// number they contain) in the commit, and makes them visible to
    /// searches at once. On disk the commit is durable when this returns.
    pub fn commit(&mut self, seq: u64) -> Result<(), IndexError> {
        let writer = self.writer.as_mut().expect("the writer lives until drop");
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&seq.to_string());
        prepared.commit()?;
        Ok(self.reader.reload()?)
    }

    /// Every chunk id in the committed index (to check it against the
    /// store after recovery).
    pub fn ids(&self) -> Result<HashSet<u64>, IndexError> {
        let searcher = self.reader.searcher();
        let mut ids = HashSet::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("chunk_id")?;
            let alive = segment.alive_bitset();
            for doc in 0..segment.max_doc() {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    if let Some(id) = column.first(doc) {
                        ids.insert(id);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Chunks in the committed index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the committed index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How rare each word is in the collection's texts: BM25's inverse
    /// document frequency of the word as the analyzer reads it, `None` for
    /// a word the analyzer drops (a stop word). Grounding weighs a
    /// question's words by it, so that "Lusitania" counts for more than
    /// "year".
    pub fn idf(&self, words: &[&str]) -> Vec<Option<f32>> {
        let searcher = self.reader.searcher();
        let n = searcher.num_docs() as f32;
        let mut analyzer = self.analyzer.clone();
        words
            .iter()
            .map(|word| {
                let mut stream = analyzer.token_stream(word);
                if !stream.advance() {
                    return None;
                }
                let term = Term::from_field_text(self.text, &stream.token().text);
                let df = searcher.doc_freq(&term).unwrap_or(0) as f32;
                Some((1.0 + (n - df + 0.5) / (df + 0.5)).ln())
            })
            .collect()
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
    ) -> Result<Vec<Ranked>, IndexError> {
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
            .collect::<Result<_, tantivy::TantivyError>>()
            .map_err(IndexError::from)
    }
}

impl Drop for KeywordIndex {
    /// Waits for background merges, so that no tantivy thread still writes
    /// into the directory once the index is gone (a dropped collection's
    /// directory is removed next).
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.wait_merging_threads() {
                tracing::warn!(error = %e, "a keyword index merge failed while closing");
            }
        }
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
        let mut idx = KeywordIndex::in_memory(Language::English).unwrap();
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
        idx.commit(1).unwrap();
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
        idx.commit(2).unwrap();
        assert!(idx.search("cat", 10, None).unwrap().is_empty());
        assert_eq!(idx.ids().unwrap(), HashSet::from([2, 3]));
    }

    #[test]
    fn rare_words_weigh_more_than_common_ones() {
        let mut idx = KeywordIndex::in_memory(Language::English).unwrap();
        idx.add(&[
            (1, "", "The Lusitania sank in the year 1915"),
            (2, "", "The year was long"),
            (3, "", "A year of rain"),
        ])
        .unwrap();
        idx.commit(1).unwrap();
        let w = idx.idf(&["Lusitania", "year", "the", "unseen"]);
        let (rare, common, unseen) = (w[0].unwrap(), w[1].unwrap(), w[3].unwrap());
        assert!(rare > common && unseen > rare, "{w:?}");
        assert_eq!(w[2], None, "a stop word");
    }

    #[test]
    fn an_index_keeps_its_language_on_disk_and_searches_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kw");
        let mut idx = KeywordIndex::create(&path, 1, Language::French).unwrap();
        idx.add(&[(1, "", "Les maisons du village")]).unwrap();
        idx.commit(2).unwrap();
        assert_eq!(ids(&idx.search("maison", 5, None).unwrap()), [1]);
        drop(idx);
        let (idx, _) = KeywordIndex::open(&path).unwrap().unwrap();
        assert_eq!(idx.language(), Language::French);
        assert_eq!(ids(&idx.search("MAISON", 5, None).unwrap()), [1]);
        let mut cjk = KeywordIndex::in_memory(Language::Cjk).unwrap();
        cjk.add(&[(3, "", "東京都の人口は約1400万人です")]).unwrap();
        cjk.commit(1).unwrap();
        assert_eq!(ids(&cjk.search("東京の人口", 5, None).unwrap()), [3]);
    }

    #[test]
    fn on_disk_commits_carry_their_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kw");
        assert!(KeywordIndex::open(&path).unwrap().is_none());
        let mut idx = KeywordIndex::create(&path, 5, Language::English).unwrap();
        idx.add(&[(7, "t", "persistent words"), (8, "", "other words")])
            .unwrap();
        idx.commit(9).unwrap();
        idx.add(&[(10, "", "never committed")]).unwrap();
        drop(idx);
        let (idx, seq) = KeywordIndex::open(&path).unwrap().unwrap();
        assert_eq!(seq, 9);
        assert_eq!(idx.ids().unwrap(), HashSet::from([7, 8]));
        assert_eq!(ids(&idx.search("persistent", 5, None).unwrap()), [7]);

        std::fs::write(path.join("meta.json"), b"{not json").unwrap();
        assert!(matches!(
            KeywordIndex::open(&path),
            Err(IndexError::Damaged { .. })
        ));
    }

    #[test]
    fn a_filter_matching_one_percent_still_returns_k_hits() {
        let mut idx = KeywordIndex::in_memory(Language::English).unwrap();
        let texts: Vec<String> = (0..1000)
            .map(|i| format!("retrieval passage number {i}"))
            .collect();
        let chunks: Vec<(u64, &str, &str)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64 + 1, "", t.as_str()))
            .collect();
        idx.add(&chunks).unwrap();
        idx.commit(1).unwrap();
        let allowed: Arc<HashSet<u64>> = Arc::new((1..=1000).filter(|id| id % 100 == 0).collect());
        let hits = idx
            .search("retrieval passage", 10, Some(Arc::clone(&allowed)))
            .unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| allowed.contains(&h.id)));
    }
}
