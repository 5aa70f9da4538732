//! Opening a collection's indexes after a stop or a crash.
//!
//! The store is the truth; the indexes are derived from it. Each index on
//! disk carries the op-log sequence number it contains (the dense
//! checkpoint's manifest, the keyword index's commit payload). Recovery
//! loads both, replays the collection's operations newer than each, then
//! checks that each index holds exactly the store's chunk ids. An index
//! that is missing, damaged, newer than the store, or disagrees with it
//! after the replay is rebuilt from the store's stored text and vectors:
//! nothing is re-embedded.
//!
//! The document table (metadata and chunk ids per document) comes back the
//! same way: from its file, saved with the dense checkpoint, with the
//! documents that newer operations touched read again from the store; it
//! is read from the store as a whole only when the file is missing,
//! damaged, older than the dense checkpoint (the op log may no longer
//! reach back to it), or disagrees with the store's counts after the
//! replay, or when an index is rebuilt anyway.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use quarry_core::{CollectionSettings, Metadata};

use crate::collection::{dense_dir, keyword_dir, CollectionIndex};
use crate::doc_table::DocTable;
use crate::meta_index::MetaIndex;
use crate::{checkpoint, doc_file, DenseIndex, IndexError, KeywordIndex};

/// Chunks read from the store per insertion while rebuilding the graph:
/// large enough for every core to link them in parallel, small enough that
/// the vectors read but not yet in the graph stay about 100 MB.
const REBUILD_BATCH: usize = 65_536;

/// A document as the store holds it now.
#[derive(Debug, Clone)]
pub struct TruthDocument {
    /// Document id.
    pub id: String,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its chunks' ids.
    pub chunk_ids: Vec<u64>,
}

/// A chunk as the store holds it now.
#[derive(Debug, Clone)]
pub struct TruthChunk {
    /// Its document's title.
    pub title: String,
    /// Its text.
    pub text: String,
    /// Its stored embedding.
    pub vector: Vec<f32>,
}

/// One operation of the collection's op log, as recovery needs it.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Its sequence number.
    pub seq: u64,
    /// The document it wrote or deleted.
    pub document: String,
    /// Chunks it added.
    pub added: Vec<u64>,
    /// Chunks it removed.
    pub removed: Vec<u64>,
}

/// Read access to the store, for one collection.
pub trait Truth {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Every document now.
    fn documents(&self) -> Result<Vec<TruthDocument>, Self::Error>;
    /// One document now (`None` when it does not exist).
    fn document(&self, id: &str) -> Result<Option<TruthDocument>, Self::Error>;
    /// How many documents and chunks the collection holds now.
    fn counts(&self) -> Result<(u64, u64), Self::Error>;
    /// The collection's operations after `seq`, oldest first.
    fn changes_after(&self, seq: u64) -> Result<Vec<Change>, Self::Error>;
    /// One chunk now (`None` when it was removed since).
    fn chunk(&self, id: u64) -> Result<Option<TruthChunk>, Self::Error>;
    /// Every chunk now with its id, in the order the store reads fastest:
    /// a rebuild reads them all, and one lookup per id would read the
    /// store in random order.
    #[allow(clippy::type_complexity)]
    fn scan_chunks(&self) -> Box<dyn Iterator<Item = Result<(u64, TruthChunk), Self::Error>> + '_>;
    /// The store's newest sequence number.
    fn last_seq(&self) -> Result<u64, Self::Error>;
}

/// How one index came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Loaded from its checkpoint at `seq`, then `replayed` operations
    /// applied.
    Loaded {
        /// The checkpoint's sequence number.
        seq: u64,
        /// Operations replayed on top.
        replayed: usize,
    },
    /// Rebuilt from the store.
    Rebuilt {
        /// Why.
        reason: String,
    },
}

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The dense index.
    pub dense: Recovered,
    /// The keyword index.
    pub keyword: Recovered,
}

fn source<E: std::error::Error + Send + Sync + 'static>(e: E) -> IndexError {
    IndexError::Source(Box::new(e))
}

fn live_chunks(docs: &DocTable) -> HashSet<u64> {
    docs.docs().flat_map(|d| d.chunks.iter().copied()).collect()
}

/// Why the dense and the keyword index (each where it loaded) do not hold
/// exactly the chunks of `docs`. The usual answer, "they do", is found by
/// counting and membership, without building a set of a million ids.
fn disagreements(
    dense: &Result<(DenseIndex, u64), String>,
    keyword: &Result<(KeywordIndex, u64), String>,
    docs: &DocTable,
) -> Result<(Option<String>, Option<String>), IndexError> {
    let holds_all = |len: usize, contains: &dyn Fn(u64) -> bool| {
        len == docs.chunk_count() && docs.docs().all(|d| d.chunks.iter().all(|&c| contains(c)))
    };
    let dense = match dense {
        Ok((d, _)) if !holds_all(d.len(), &|c| d.contains(c)) => {
            ids_disagree("dense", &d.ids().collect(), &live_chunks(docs))
        }
        _ => None,
    };
    let keyword = match keyword {
        Ok((k, _)) => {
            let ids = k.ids()?;
            if holds_all(ids.len(), &|c| ids.contains(&c)) {
                None
            } else {
                ids_disagree("keyword", &ids, &live_chunks(docs))
            }
        }
        Err(_) => None,
    };
    Ok((dense, keyword))
}

fn ids_disagree(what: &str, have: &HashSet<u64>, truth: &HashSet<u64>) -> Option<String> {
    if have == truth {
        return None;
    }
    let missing = truth.difference(have).count();
    let extra = have.difference(truth).count();
    Some(format!(
        "after replay the {what} index holds {} chunks, the store {}: {missing} missing, {extra} extra",
        have.len(),
        truth.len()
    ))
}

impl CollectionIndex {
    /// Opens the indexes in `dir` and brings them up to date with `truth`
    /// (see the module docs).
    pub fn recover<T: Truth>(
        dir: &Path,
        settings: CollectionSettings,
        rebuild_share: f64,
        truth: &T,
    ) -> Result<(Self, RecoveryReport), IndexError> {
        let started = std::time::Instant::now();
        let phase = |name: &str| {
            tracing::debug!(
                phase = name,
                ms = started.elapsed().as_millis() as u64,
                "recovery"
            );
        };
        let last_seq = truth.last_seq().map_err(source)?;
        let not_newer = |seq: u64| {
            (seq > last_seq).then(|| {
                format!("its checkpoint (op {seq}) is newer than the store (op {last_seq})")
            })
        };
        // The dense checkpoint (mostly its checksums) loads on a thread of
        // its own while the keyword index and the saved documents load
        // here: a restart waits for the slower of the two, not for both.
        let (mut dense, mut keyword, saved) = std::thread::scope(|scope| {
            let dense = scope.spawn(|| {
                let dense: Result<(DenseIndex, u64), String> =
                    match checkpoint::load(&dense_dir(dir), settings) {
                        Ok(Some((d, seq))) => not_newer(seq).map_or(Ok((d, seq)), Err),
                        Ok(None) => Err("no checkpoint".into()),
                        Err(e) => Err(e.to_string()),
                    };
                phase("dense checkpoint loaded");
                dense
            });
            let keyword: Result<(KeywordIndex, u64), String> =
                match KeywordIndex::open(&keyword_dir(dir)) {
                    Ok(Some((k, _))) if k.language() != settings.language => Err(format!(
                        "it analyzes {} text, the collection is {}",
                        k.language(),
                        settings.language
                    )),
                    Ok(Some((k, seq))) => not_newer(seq).map_or(Ok((k, seq)), Err),
                    Ok(None) => Err("no index".into()),
                    Err(e) => Err(e.to_string()),
                };
            phase("keyword index opened");
            let saved = doc_file::load(dir);
            phase("saved documents read");
            let dense = dense
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (dense, keyword, saved)
        });
        let mut saved_docs: Result<(DocTable, u64), String> = match (&dense, &keyword) {
            (Err(_), _) | (_, Err(_)) => Err("an index did not load".into()),
            (Ok((_, dense_seq)), Ok(_)) => match saved {
                Ok(Some((_, seq))) if seq < *dense_seq => Err(format!(
                    "the saved documents (op {seq}) are older than the dense checkpoint (op {dense_seq})"
                )),
                Ok(Some((t, seq))) => not_newer(seq).map_or(Ok((t, seq)), Err),
                Ok(None) => Err("no saved documents".into()),
                Err(e) => Err(e.to_string()),
            },
        };
        // Replay: chunk ids are never reused, so the net effect of the
        // operations after a checkpoint is "remove everything they removed,
        // add whatever they added that the store still has"; for the
        // documents, "each one they touched is as the store holds it now".
        let since = [
            dense.as_ref().ok().map(|(_, seq)| *seq),
            keyword.as_ref().ok().map(|(_, seq)| *seq),
            saved_docs.as_ref().ok().map(|(_, seq)| *seq),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut replayed = (0, 0);
        let mut docs_replayed = 0;
        if let Some(since) = since {
            let changes = truth.changes_after(since).map_err(source)?;
            if let Ok((t, seq)) = &mut saved_docs {
                let touched: BTreeSet<&str> = changes
                    .iter()
                    .filter(|c| c.seq > *seq)
                    .map(|c| c.document.as_str())
                    .collect();
                docs_replayed = touched.len();
                for id in touched {
                    match truth.document(id).map_err(source)? {
                        Some(d) => {
                            t.insert(&d.id, &d.metadata, d.chunk_ids);
                        }
                        None => {
                            t.remove(id);
                        }
                    }
                }
            }
            let mut fetched: HashMap<u64, Option<TruthChunk>> = HashMap::new();
            let mut fetch = |id: u64| -> Result<Option<TruthChunk>, IndexError> {
                if let Some(c) = fetched.get(&id) {
                    return Ok(c.clone());
                }
                let c = truth.chunk(id).map_err(source)?;
                fetched.insert(id, c.clone());
                Ok(c)
            };
            if let Ok((d, seq)) = &mut dense {
                let newer: Vec<&Change> = changes.iter().filter(|c| c.seq > *seq).collect();
                replayed.0 = newer.len();
                let removed: Vec<u64> = newer.iter().flat_map(|c| c.removed.clone()).collect();
                d.remove(&removed);
                let mut added = Vec::new();
                for id in newer.iter().flat_map(|c| c.added.iter().copied()) {
                    if let Some(chunk) = fetch(id)? {
                        added.push((id, chunk.vector));
                    }
                }
                d.insert(added);
            }
            if let Ok((k, seq)) = &mut keyword {
                let newer: Vec<&Change> = changes.iter().filter(|c| c.seq > *seq).collect();
                replayed.1 = newer.len();
                let removed: Vec<u64> = newer.iter().flat_map(|c| c.removed.clone()).collect();
                k.remove(&removed);
                for id in newer.iter().flat_map(|c| c.added.iter().copied()) {
                    if let Some(chunk) = fetch(id)? {
                        k.add(&[(id, chunk.title.as_str(), chunk.text.as_str())])?;
                    }
                }
                k.commit(last_seq)?;
            }
        }

        // Check: the documents agree with the store's counts, and each
        // index holds exactly their chunks.
        if let Ok((t, _)) = &saved_docs {
            let (documents, chunks) = truth.counts().map_err(source)?;
            if (t.len() as u64, t.chunk_count() as u64) != (documents, chunks) {
                saved_docs = Err(format!(
                    "after replay the saved documents are {} with {} chunks, the store's {documents} with {chunks}",
                    t.len(),
                    t.chunk_count()
                ));
            }
        }
        let from_store = || -> Result<DocTable, IndexError> {
            let documents = truth.documents().map_err(source)?;
            let mut t = DocTable::with_capacity(documents.len());
            for d in documents {
                t.insert(&d.id, &d.metadata, d.chunk_ids);
            }
            Ok(t)
        };
        let (mut docs, mut docs_changed, from_file) = match saved_docs {
            Ok((t, _)) => (t, docs_replayed > 0, true),
            Err(reason) => {
                tracing::info!(%reason, "reading the documents from the store");
                (from_store()?, true, false)
            }
        };
        phase("documents ready");
        // The check and the metadata postings only read the table: they
        // are made side by side.
        let (disagree, meta) = std::thread::scope(|scope| {
            let meta = scope.spawn(|| MetaIndex::build(&docs));
            let disagree = disagreements(&dense, &keyword, &docs);
            let meta = meta
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (disagree, meta)
        });
        let mut disagree = disagree?;
        let mut meta = Some(meta);
        if from_file && disagree != (None, None) {
            // The indexes are checked against the store itself before one
            // is rebuilt: the saved table may be the one that is wrong.
            tracing::info!(
                "an index disagrees with the saved documents; reading the documents from the store"
            );
            docs = from_store()?;
            docs_changed = true;
            meta = None;
            disagree = disagreements(&dense, &keyword, &docs)?;
        }
        if let Some(reason) = disagree.0 {
            dense = Err(reason);
        }
        if let Some(reason) = disagree.1 {
            keyword = Err(reason);
        }

        phase("checked against the store");
        // Rebuild what could not be recovered, in one pass over the store.
        let report = RecoveryReport {
            dense: match &dense {
                Ok((_, seq)) => Recovered::Loaded {
                    seq: *seq,
                    replayed: replayed.0,
                },
                Err(reason) => Recovered::Rebuilt {
                    reason: reason.clone(),
                },
            },
            keyword: match &keyword {
                Ok((_, seq)) => Recovered::Loaded {
                    seq: *seq,
                    replayed: replayed.1,
                },
                Err(reason) => Recovered::Rebuilt {
                    reason: reason.clone(),
                },
            },
        };
        let mut fresh_keyword = match keyword {
            Ok(_) => None,
            Err(_) => Some(KeywordIndex::create(
                &keyword_dir(dir),
                0,
                settings.language,
            )?),
        };
        // A dense rebuild inserts as it reads, a batch at a time, so that
        // the store's vectors are never all held twice.
        let mut fresh_dense = dense
            .is_err()
            .then(|| DenseIndex::new(settings, docs.chunk_count()));
        let mut batch: Vec<(u64, Vec<f32>)> = Vec::new();
        // Where a rebuild's time goes, for the debug log.
        let mut spent = [std::time::Duration::ZERO; 3];
        let mut timed = |slot: usize, since: std::time::Instant| spent[slot] += since.elapsed();
        if fresh_keyword.is_some() || fresh_dense.is_some() {
            let live = live_chunks(&docs);
            let mut indexed = 0;
            let mut scan = truth.scan_chunks();
            loop {
                let t = std::time::Instant::now();
                let Some(item) = scan.next() else { break };
                let (id, chunk) = item.map_err(source)?;
                timed(0, t);
                if !live.contains(&id) {
                    // No document lists it (none does in a consistent
                    // store): a search could not return it.
                    continue;
                }
                indexed += 1;
                if let Some(k) = &mut fresh_keyword {
                    let t = std::time::Instant::now();
                    k.add(&[(id, chunk.title.as_str(), chunk.text.as_str())])?;
                    timed(1, t);
                }
                if let Some(d) = &mut fresh_dense {
                    batch.push((id, chunk.vector));
                    if batch.len() >= REBUILD_BATCH {
                        let t = std::time::Instant::now();
                        d.insert(std::mem::take(&mut batch));
                        timed(2, t);
                    }
                }
            }
            if indexed != live.len() {
                let missing = live.len() - indexed;
                return Err(IndexError::Source(
                    format!("{missing} chunks that documents list are missing from the store")
                        .into(),
                ));
            }
        }
        if let Some(d) = &mut fresh_dense {
            let t = std::time::Instant::now();
            d.insert(batch);
            d.finish();
            timed(2, t);
        }
        if fresh_keyword.is_some() || fresh_dense.is_some() {
            tracing::debug!(
                read_ms = spent[0].as_millis() as u64,
                keyword_ms = spent[1].as_millis() as u64,
                dense_ms = spent[2].as_millis() as u64,
                "rebuild: reading the store, feeding the keyword index, building the graph"
            );
            phase("rebuilt");
        }
        let keyword = match (keyword, fresh_keyword) {
            (Ok((k, _)), None) => k,
            (_, Some(mut k)) => {
                k.commit(last_seq)?;
                phase("keyword index committed");
                k
            }
            (Err(_), None) => unreachable!("a failed keyword index is rebuilt"),
        };
        let (dense, dense_saved, dirty) = match (dense, fresh_dense) {
            (Ok((d, seq)), None) => (d, seq, replayed.0 > 0),
            (_, Some(mut d)) => {
                // Saved at once: a rebuild is the slow path, and a crash
                // before the next periodic checkpoint must not repeat it.
                let saved = checkpoint::save(&d, &dense_dir(dir), last_seq)?;
                // Then served from the file, as after a restart.
                checkpoint::map_saved(&mut d, &saved)?;
                phase("dense checkpoint saved");
                (d, last_seq, false)
            }
            (Err(_), None) => unreachable!("a failed dense index is rebuilt"),
        };

        if docs_changed {
            // They hold the store as of `last_seq`: saved, the next open
            // reads them back. Failing to save only costs that open time.
            if let Err(e) = doc_file::save(&docs, dir, last_seq) {
                tracing::warn!(error = %e, "cannot save the document table; the next open reads the store");
            }
        }
        let meta = meta.unwrap_or_else(|| MetaIndex::build(&docs));
        let index = Self::assemble(
            dense,
            keyword,
            docs,
            meta,
            Some(dir),
            settings,
            rebuild_share,
        )
        .saved_at(dense_saved);
        index.dense_dirty.store(dirty, Ordering::Release);
        phase("ready");
        Ok((index, report))
    }
}
