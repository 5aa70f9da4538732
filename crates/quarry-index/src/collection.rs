//! One collection's search state: the dense and keyword indexes plus the
//! chunk-to-document and document-to-metadata maps that filters and hit
//! hydration need. Fed by the engine from the store (the source of truth).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use quarry_core::{CollectionSettings, Filter, Metadata};

use crate::{fuse, DenseIndex, Fused, Fusion, KeywordIndex, Ranked};

/// Which retrievers a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dense and keyword, fused.
    Hybrid,
    /// Dense only.
    Dense,
    /// Keyword only.
    Keyword,
}

/// A chunk as the index receives it.
#[derive(Debug, Clone)]
pub struct IndexedChunk {
    /// Chunk id.
    pub id: u64,
    /// Chunk text.
    pub text: String,
    /// Its embedding.
    pub vector: Vec<f32>,
}

/// A document's chunks and metadata, as the index receives them.
#[derive(Debug, Clone)]
pub struct IndexedDocument {
    /// Document id.
    pub id: String,
    /// Title (indexed with every chunk).
    pub title: String,
    /// Metadata (for filters).
    pub metadata: Metadata,
    /// Its chunks.
    pub chunks: Vec<IndexedChunk>,
}

/// One search.
#[derive(Debug, Clone, Copy)]
pub struct SearchQuery<'a> {
    /// The query text (keyword retriever).
    pub text: &'a str,
    /// The query embedding (dense retriever); required for Hybrid and Dense.
    pub vector: Option<&'a [f32]>,
    /// Which retrievers.
    pub mode: Mode,
    /// Metadata filter.
    pub filter: Option<&'a Filter>,
    /// How Hybrid fuses.
    pub fusion: Fusion,
    /// Hits to return.
    pub top_k: usize,
    /// Candidates each retriever contributes before fusion.
    pub depth: usize,
}

struct DocEntry {
    metadata: Metadata,
    chunks: Vec<u64>,
}

/// The search state of one collection.
pub struct CollectionIndex {
    dense: DenseIndex,
    keyword: KeywordIndex,
    docs: HashMap<String, DocEntry>,
    /// Rebuild the graph when tombstones pass this share.
    rebuild_share: f64,
}

/// Index errors.
pub type IndexError = tantivy::TantivyError;

impl CollectionIndex {
    /// An empty index.
    pub fn new(
        settings: CollectionSettings,
        capacity: usize,
        rebuild_share: f64,
    ) -> Result<Self, IndexError> {
        Ok(Self {
            dense: DenseIndex::new(settings, capacity),
            keyword: KeywordIndex::in_memory()?,
            docs: HashMap::new(),
            rebuild_share,
        })
    }

    /// Adds or replaces documents, then commits.
    pub fn upsert(&mut self, docs: Vec<IndexedDocument>) -> Result<(), IndexError> {
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        self.remove_staged(&ids);
        let mut vectors = Vec::new();
        for doc in docs {
            let rows: Vec<(u64, &str, &str)> = doc
                .chunks
                .iter()
                .map(|c| (c.id, doc.title.as_str(), c.text.as_str()))
                .collect();
            self.keyword.add(&rows)?;
            self.docs.insert(
                doc.id,
                DocEntry {
                    metadata: doc.metadata,
                    chunks: doc.chunks.iter().map(|c| c.id).collect(),
                },
            );
            vectors.extend(doc.chunks.into_iter().map(|c| (c.id, c.vector)));
        }
        self.dense.insert(vectors);
        self.keyword.commit()?;
        self.maybe_rebuild();
        Ok(())
    }

    /// Removes documents, then commits.
    pub fn remove(&mut self, ids: &[String]) -> Result<(), IndexError> {
        self.remove_staged(ids);
        self.keyword.commit()?;
        self.maybe_rebuild();
        Ok(())
    }

    fn remove_staged(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(old) = self.docs.remove(id) {
                self.dense.remove(&old.chunks);
                self.keyword.remove(&old.chunks);
            }
        }
    }

    fn maybe_rebuild(&mut self) {
        if self.dense.tombstone_share() > self.rebuild_share {
            tracing::info!(
                share = self.dense.tombstone_share(),
                "rebuilding the HNSW graph without deleted chunks"
            );
            self.dense.rebuild();
        }
    }

    /// The chunks of documents whose metadata matches.
    fn allowed(&self, filter: &Filter) -> HashSet<u64> {
        self.docs
            .values()
            .filter(|d| filter.matches(&d.metadata))
            .flat_map(|d| d.chunks.iter().copied())
            .collect()
    }

    /// Searches: each retriever returns `depth` candidates (inside the
    /// filter), which are fused and cut to `top_k`.
    pub fn search(&self, q: &SearchQuery<'_>) -> Result<Vec<Fused>, IndexError> {
        let SearchQuery {
            text: query_text,
            vector: query_vector,
            mode,
            filter,
            fusion,
            top_k,
            depth,
        } = *q;
        let allowed = filter.map(|f| Arc::new(self.allowed(f)));
        if allowed.as_ref().is_some_and(|a| a.is_empty()) {
            return Ok(Vec::new());
        }
        let depth = depth.max(top_k);
        let dense: Vec<Ranked> = match (mode, query_vector) {
            (Mode::Hybrid | Mode::Dense, Some(v)) => {
                self.dense.search(v, depth, allowed.as_deref())
            }
            _ => Vec::new(),
        };
        let keyword: Vec<Ranked> = match mode {
            Mode::Hybrid | Mode::Keyword => self.keyword.search(query_text, depth, allowed)?,
            Mode::Dense => Vec::new(),
        };
        let hits = match mode {
            Mode::Hybrid => fuse(&dense, &keyword, fusion, top_k),
            // A single retriever: its own order and its own score.
            Mode::Dense | Mode::Keyword => {
                let dense_list = mode == Mode::Dense;
                let list = if dense_list { &dense } else { &keyword };
                list.iter()
                    .take(top_k)
                    .enumerate()
                    .map(|(i, r)| {
                        let ranked = Some((i as u32 + 1, r.score));
                        Fused {
                            id: r.id,
                            score: r.score as f64,
                            dense: if dense_list { ranked } else { None },
                            keyword: if dense_list { None } else { ranked },
                        }
                    })
                    .collect()
            }
        };
        Ok(hits)
    }
}
