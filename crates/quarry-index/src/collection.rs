//! One collection's search state: the dense and keyword indexes plus the
//! document-to-metadata-and-chunks map that filters need, with the
//! bookkeeping of their checkpoints. Fed by the engine from the store (the
//! source of truth); recovered from disk by [`crate::recovery`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use quarry_core::{CollectionSettings, Filter, Metadata};

use crate::doc_table::DocTable;
use crate::meta_index::MetaIndex;
use crate::{
    checkpoint, doc_file, fuse, DenseIndex, Fused, Fusion, IndexError, KeywordIndex, Ranked,
};

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

/// The search state of one collection.
///
/// Durability: the keyword index commits (with the op-log sequence number)
/// on every change; the dense graph is saved by [`Self::checkpoint`], which
/// the engine calls periodically and on shutdown, and until then the op log
/// covers it ([`Self::durable_through`]).
pub struct CollectionIndex {
    pub(crate) dense: DenseIndex,
    pub(crate) keyword: KeywordIndex,
    pub(crate) docs: DocTable,
    /// Postings of the documents' metadata, to narrow filters.
    meta: MetaIndex,
    /// Where the checkpoints live; `None` keeps everything in memory.
    pub(crate) dir: Option<PathBuf>,
    pub(crate) settings: CollectionSettings,
    /// Rebuild the graph when tombstones pass this share.
    pub(crate) rebuild_share: f64,
    /// The sequence number of the dense checkpoint on disk.
    pub(crate) dense_saved: AtomicU64,
    /// Whether the graph changed since that checkpoint.
    pub(crate) dense_dirty: AtomicBool,
    /// Whether a graph rebuild is under way.
    rebuilding: AtomicBool,
}

/// A graph rebuild: a copy of the live vectors, built into a new graph
/// while the old one keeps serving.
pub struct RebuildJob {
    settings: CollectionSettings,
    vectors: Vec<(u64, Vec<f32>)>,
}

impl RebuildJob {
    /// Chunks in the new graph.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether the new graph is empty.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Builds the new graph (slow: call it without holding the index).
    pub fn run(self) -> DenseIndex {
        DenseIndex::build(self.settings, self.vectors)
    }
}

/// The dense checkpoint's directory inside a collection's index directory.
pub(crate) fn dense_dir(dir: &Path) -> PathBuf {
    dir.join("dense")
}

/// The keyword index's directory inside a collection's index directory.
pub(crate) fn keyword_dir(dir: &Path) -> PathBuf {
    dir.join("keyword")
}

impl CollectionIndex {
    /// A new, empty index for a collection created at op `seq`, with its
    /// first checkpoints written to `dir` (or in memory when `None`).
    pub fn create(
        dir: Option<&Path>,
        settings: CollectionSettings,
        rebuild_share: f64,
        seq: u64,
    ) -> Result<Self, IndexError> {
        let dense = DenseIndex::new(settings, 0);
        let docs = DocTable::default();
        let keyword = match dir {
            Some(dir) => {
                doc_file::save(&docs, dir, seq)?;
                checkpoint::save(&dense, &dense_dir(dir), seq)?;
                KeywordIndex::create(&keyword_dir(dir), seq, settings.language)?
            }
            None => KeywordIndex::in_memory(settings.language)?,
        };
        Ok(Self::assemble(
            dense,
            keyword,
            docs,
            MetaIndex::default(),
            dir,
            settings,
            rebuild_share,
        )
        .saved_at(seq))
    }

    /// Records that the dense checkpoint on disk holds the ops up to
    /// `seq`.
    pub(crate) fn saved_at(self, seq: u64) -> Self {
        self.dense_saved.store(seq, Ordering::Release);
        self
    }

    pub(crate) fn assemble(
        dense: DenseIndex,
        keyword: KeywordIndex,
        docs: DocTable,
        meta: MetaIndex,
        dir: Option<&Path>,
        settings: CollectionSettings,
        rebuild_share: f64,
    ) -> Self {
        Self {
            dense,
            keyword,
            docs,
            meta,
            dir: dir.map(Path::to_path_buf),
            settings,
            rebuild_share,
            dense_saved: AtomicU64::new(0),
            dense_dirty: AtomicBool::new(false),
            rebuilding: AtomicBool::new(false),
        }
    }

    /// Adds or replaces documents written to the store as ops up to `seq`,
    /// then commits.
    pub fn upsert(&mut self, docs: Vec<IndexedDocument>, seq: u64) -> Result<(), IndexError> {
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
            let chunks = doc.chunks.iter().map(|c| c.id).collect();
            let (number, _) = self.docs.insert(&doc.id, &doc.metadata, chunks);
            if let Some(entry) = self.docs.get(number) {
                self.meta.insert(number, entry.fields());
            }
            vectors.extend(doc.chunks.into_iter().map(|c| (c.id, c.vector)));
        }
        self.dense.insert(vectors);
        self.dense_dirty.store(true, Ordering::Release);
        self.keyword.commit(seq)
    }

    /// Removes documents deleted from the store as ops up to `seq`, then
    /// commits.
    pub fn remove(&mut self, ids: &[String], seq: u64) -> Result<(), IndexError> {
        self.remove_staged(ids);
        self.dense_dirty.store(true, Ordering::Release);
        self.keyword.commit(seq)
    }

    fn remove_staged(&mut self, ids: &[String]) {
        for id in ids {
            if let Some((number, old)) = self.docs.remove(id) {
                self.meta.remove(number, old.fields());
                self.dense.remove(&old.chunks);
                self.keyword.remove(&old.chunks);
            }
        }
    }

    /// The dense index.
    pub fn dense(&self) -> &DenseIndex {
        &self.dense
    }

    /// The keyword index.
    pub fn keyword(&self) -> &KeywordIndex {
        &self.keyword
    }

    /// Live chunks.
    pub fn len(&self) -> usize {
        self.dense.len()
    }

    /// Whether no chunk is live.
    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    /// Deleted chunks still in the graph, as a share of it.
    pub fn tombstone_share(&self) -> f64 {
        self.dense.tombstone_share()
    }

    /// Starts a graph rebuild when deleted chunks pass the configured share
    /// and none is under way: returns the job, to run outside any lock. Finish with
    /// [`Self::finish_rebuild`] or [`Self::abandon_rebuild`].
    pub fn begin_rebuild(&self) -> Option<RebuildJob> {
        if self.dense.tombstone_share() <= self.rebuild_share
            || self.rebuilding.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        Some(RebuildJob {
            settings: self.settings,
            vectors: self.dense.snapshot(),
        })
    }

    /// Swaps in a graph built from [`Self::begin_rebuild`]'s snapshot,
    /// bringing it up to date first.
    pub fn finish_rebuild(&mut self, fresh: DenseIndex) {
        self.dense.replace_with(fresh);
        self.dense_dirty.store(true, Ordering::Release);
        self.rebuilding.store(false, Ordering::Release);
    }

    /// Gives up a rebuild (it failed); a later change may start another.
    pub fn abandon_rebuild(&self) {
        self.rebuilding.store(false, Ordering::Release);
    }

    /// Saves the dense graph if it changed since its last checkpoint,
    /// recording `seq`: the caller guarantees every op of this collection
    /// up to `seq` is applied (it reads the store's last sequence number
    /// while holding this index, which writers need exclusively). Returns
    /// whether it saved. Searches go on meanwhile.
    pub fn checkpoint(&self, seq: u64) -> Result<bool, IndexError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        if !self.dense_dirty.load(Ordering::Acquire) {
            return Ok(false);
        }
        tracing::debug!(
            seq,
            chunks = self.dense.len(),
            "saving a dense index checkpoint"
        );
        // The documents first: the op log is kept from the dense
        // checkpoint's sequence number on, so a table at least as new can
        // always be brought up to date (recovery checks it is).
        doc_file::save(&self.docs, dir, seq)?;
        checkpoint::save(&self.dense, &dense_dir(dir), seq)?;
        self.dense_saved.store(seq, Ordering::Release);
        self.dense_dirty.store(false, Ordering::Release);
        Ok(true)
    }

    /// The op-log sequence number up to which this collection's ops are no
    /// longer needed for recovery: `None` when everything applied is in the
    /// checkpoints (no constraint), else the dense checkpoint's.
    pub fn durable_through(&self) -> Option<u64> {
        self.dense_dirty
            .load(Ordering::Acquire)
            .then(|| self.dense_saved.load(Ordering::Acquire))
    }

    /// The chunks of documents whose metadata matches: the postings narrow
    /// the candidates, `Filter::matches` decides.
    fn allowed(&self, filter: &Filter) -> HashSet<u64> {
        fn chunks(d: &crate::doc_table::Doc) -> impl Iterator<Item = u64> + '_ {
            d.chunks.iter().copied()
        }
        match self.meta.candidates(filter) {
            Some(candidates) => candidates
                .into_iter()
                .filter_map(|number| self.docs.get(number))
                .filter(|d| d.matches(filter))
                .flat_map(chunks)
                .collect(),
            None => self
                .docs
                .docs()
                .filter(|d| d.matches(filter))
                .flat_map(chunks)
                .collect(),
        }
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
        let hits = combine(mode, &dense, &keyword, fusion, top_k);
        Ok(hits)
    }
}

/// The hits of a search from its retrievers' lists: fused for Hybrid; for
/// a single retriever its own order and its own score. Every backend ends
/// its search here, so that modes and fusion mean the same on each.
pub fn combine(
    mode: Mode,
    dense: &[Ranked],
    keyword: &[Ranked],
    fusion: Fusion,
    top_k: usize,
) -> Vec<Fused> {
    match mode {
        Mode::Hybrid => fuse(dense, keyword, fusion, top_k),
        Mode::Dense | Mode::Keyword => {
            let dense_list = mode == Mode::Dense;
            let list = if dense_list { dense } else { keyword };
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
    }
}
