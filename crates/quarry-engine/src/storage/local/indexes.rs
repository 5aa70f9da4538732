//! The local backend's search indexes: one [`CollectionIndex`] per collection, kept
//! on disk in `DATA_DIR/indexes/<collection id>/` and derived from the store.
//!
//! - Opening recovers each collection ([`quarry_index::recovery`]): load the
//!   checkpoints, replay newer op-log entries, rebuild from stored vectors
//!   what is missing or damaged (logged), never re-embedding.
//! - A checkpointer thread saves changed dense graphs every
//!   [`IndexConfig::checkpoint_interval`] (and [`Indexes::checkpoint_all`] runs
//!   once more on shutdown), then truncates the op log below what every
//!   index holds.
//! - A graph whose deleted share passes [`IndexConfig::rebuild_share`] is
//!   rebuilt on its own thread from a snapshot while searches and writes go
//!   on against the old graph, then swapped in.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use quarry_index::{Change, CollectionIndex, Recovered, Truth, TruthChunk, TruthDocument};
use quarry_store::{OpKind, Store, StoreError, StoredCollection};

use crate::{EngineError, Result};

/// How the indexes persist and maintain themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexConfig {
    /// How often changed dense graphs are saved.
    pub checkpoint_interval: Duration,
    /// Rebuild a graph when deleted chunks pass this share of it.
    pub rebuild_share: f64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_secs(60),
            rebuild_share: 0.2,
        }
    }
}

pub(crate) type Shared = Arc<RwLock<CollectionIndex>>;

/// Index errors are the server's own failures.
fn lock_poisoned() -> EngineError {
    EngineError::Internal("an index lock was poisoned by a panic".into())
}

/// Every collection's index.
pub(crate) struct Indexes {
    map: RwLock<HashMap<u64, Shared>>,
    dir: PathBuf,
    config: IndexConfig,
    /// One checkpoint pass at a time (the timer's and shutdown's).
    checkpointing: Mutex<()>,
}

/// The store, as recovery reads it for one collection.
struct StoreTruth<'a> {
    store: &'a Store,
    collection_id: u64,
    /// Its documents and chunks, as listed when the store was opened.
    counts: (u64, u64),
    /// Titles by document id, filled by `documents` (chunks carry only
    /// their document's id).
    titles: RefCell<HashMap<String, String>>,
}

impl StoreTruth<'_> {
    /// A document's title: from those `documents` read, else the store.
    fn title(&self, document_id: &str) -> std::result::Result<String, StoreError> {
        if let Some(t) = self.titles.borrow().get(document_id) {
            return Ok(t.clone());
        }
        Ok(self
            .store
            .document_in(self.collection_id, document_id)?
            .map(|d| d.document.title)
            .unwrap_or_default())
    }
}

impl Truth for StoreTruth<'_> {
    type Error = StoreError;

    fn documents(&self) -> std::result::Result<Vec<TruthDocument>, StoreError> {
        let mut titles = self.titles.borrow_mut();
        self.store
            .document_heads(self.collection_id)
            .map(|d| {
                let d = d?;
                titles.insert(d.id.clone(), d.title);
                Ok(TruthDocument {
                    id: d.id,
                    metadata: d.metadata,
                    chunk_ids: d.chunk_ids,
                })
            })
            .collect()
    }

    fn document(&self, id: &str) -> std::result::Result<Option<TruthDocument>, StoreError> {
        Ok(self
            .store
            .document_in(self.collection_id, id)?
            .map(|d| TruthDocument {
                id: d.document.id,
                metadata: d.document.metadata,
                chunk_ids: d.chunk_ids,
            }))
    }

    fn counts(&self) -> std::result::Result<(u64, u64), StoreError> {
        Ok(self.counts)
    }

    fn changes_after(&self, seq: u64) -> std::result::Result<Vec<Change>, StoreError> {
        let mut changes = Vec::new();
        for op in self.store.ops_after(seq) {
            let op = op?;
            if op.collection_id != self.collection_id {
                continue;
            }
            let (document, added, removed) = match op.kind {
                OpKind::UpsertDocument {
                    document_id,
                    added,
                    removed,
                } => (document_id, added, removed),
                OpKind::DeleteDocument {
                    document_id,
                    removed,
                } => (document_id, Vec::new(), removed),
                OpKind::CreateCollection { .. } | OpKind::DropCollection { .. } => continue,
            };
            changes.push(Change {
                seq: op.seq,
                document,
                added,
                removed,
            });
        }
        Ok(changes)
    }

    fn chunk(&self, id: u64) -> std::result::Result<Option<TruthChunk>, StoreError> {
        let Some(chunk) = self.store.chunk(self.collection_id, id)? else {
            return Ok(None);
        };
        let Some(vector) = self.store.vector(self.collection_id, id)? else {
            return Err(StoreError::Corrupt(format!("chunk {id} has no vector")));
        };
        Ok(Some(TruthChunk {
            title: self.title(&chunk.document_id)?,
            text: chunk.text,
            vector,
        }))
    }

    fn scan_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = std::result::Result<(u64, TruthChunk), StoreError>> + '_> {
        // Both trees are keyed by chunk id: one pass over each, side by
        // side, reads the store in its own order.
        let mut vectors = self.store.vectors(self.collection_id).peekable();
        Box::new(self.store.chunks(self.collection_id).map(move |chunk| {
            let chunk = chunk?;
            // A vector without its chunk (none in a consistent store) is
            // passed over, as a lookup by chunk id would never see it.
            while vectors
                .next_if(|v| matches!(v, Ok((id, _)) if *id < chunk.id))
                .is_some()
            {}
            let vector = match vectors.next_if(|v| !matches!(v, Ok((id, _)) if *id > chunk.id)) {
                Some(v) => v?.1,
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "chunk {} has no vector",
                        chunk.id
                    )))
                }
            };
            let title = self.title(&chunk.document_id)?;
            Ok((
                chunk.id,
                TruthChunk {
                    title,
                    text: chunk.text,
                    vector,
                },
            ))
        }))
    }

    fn last_seq(&self) -> std::result::Result<u64, StoreError> {
        self.store.last_seq()
    }
}

fn describe(r: &Recovered) -> String {
    match r {
        Recovered::Loaded { seq, replayed } => {
            format!("checkpoint at op {seq}, {replayed} ops replayed")
        }
        Recovered::Rebuilt { reason } => format!("rebuilt from the store ({reason})"),
    }
}

impl Indexes {
    /// Opens every collection's indexes under `dir`, recovering them from
    /// the store, and removes the directories of collections that no longer
    /// exist.
    pub(crate) fn open(store: &Store, dir: PathBuf, config: IndexConfig) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            EngineError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let indexes = Self {
            map: RwLock::new(HashMap::new()),
            dir,
            config,
            checkpointing: Mutex::new(()),
        };
        let collections = store.list_collections()?;
        for coll in &collections {
            let started = Instant::now();
            let truth = StoreTruth {
                store,
                collection_id: coll.id,
                counts: (coll.document_count, coll.chunk_count),
                titles: RefCell::new(HashMap::new()),
            };
            let (index, report) = CollectionIndex::recover(
                &indexes.collection_dir(coll.id),
                coll.settings,
                config.rebuild_share,
                &truth,
            )?;
            let ms = started.elapsed().as_millis() as u64;
            for (name, part) in [("dense", &report.dense), ("keyword", &report.keyword)] {
                if matches!(part, Recovered::Rebuilt { .. }) {
                    tracing::warn!(collection = %coll.name, index = %name, "{}", describe(part));
                }
            }
            tracing::info!(
                collection = %coll.name,
                chunks = index.len(),
                ms,
                dense = %describe(&report.dense),
                keyword = %describe(&report.keyword),
                "collection indexes ready"
            );
            indexes.insert(coll.id, index)?;
        }
        indexes.remove_orphans(&collections);
        Ok(indexes)
    }

    fn collection_dir(&self, collection_id: u64) -> PathBuf {
        self.dir.join(collection_id.to_string())
    }

    /// Index directories of collections that are gone (a crash between the
    /// store's drop and the directory's removal) only hold disk space.
    fn remove_orphans(&self, collections: &[StoredCollection]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let live = name
                .parse::<u64>()
                .is_ok_and(|id| collections.iter().any(|c| c.id == id));
            if !live {
                tracing::info!(path = %entry.path().display(), "removing the indexes of a deleted collection");
                remove_dir(&entry.path());
            }
        }
    }

    /// Creates the (empty) indexes of a collection created at op `seq`.
    pub(crate) fn create(&self, coll: &StoredCollection, seq: u64) -> Result<()> {
        let index = CollectionIndex::create(
            Some(&self.collection_dir(coll.id)),
            coll.settings,
            self.config.rebuild_share,
            seq,
        )?;
        self.insert(coll.id, index)
    }

    fn insert(&self, collection_id: u64, index: CollectionIndex) -> Result<()> {
        self.map
            .write()
            .map_err(|_| lock_poisoned())?
            .insert(collection_id, Arc::new(RwLock::new(index)));
        Ok(())
    }

    /// Forgets a dropped collection's indexes and removes their files.
    pub(crate) fn remove(&self, collection_id: u64) -> Result<()> {
        let removed = self
            .map
            .write()
            .map_err(|_| lock_poisoned())?
            .remove(&collection_id);
        if let Some(index) = removed {
            // Wait for a checkpoint or a rebuild in progress to let go.
            drop(write(&index)?);
        }
        remove_dir(&self.collection_dir(collection_id));
        Ok(())
    }

    pub(crate) fn get(&self, collection_id: u64) -> Result<Shared> {
        self.map
            .read()
            .map_err(|_| lock_poisoned())?
            .get(&collection_id)
            .cloned()
            .ok_or_else(|| {
                EngineError::Internal(format!("collection {collection_id} has no index"))
            })
    }

    /// Saves every changed dense graph, then drops the op-log entries that
    /// every index now holds.
    pub(crate) fn checkpoint_all(&self, store: &Store) -> Result<()> {
        let _one = self.checkpointing.lock().map_err(|_| lock_poisoned())?;
        // Entries after this may belong to writes still being applied.
        let mut through = store.last_seq()?;
        let all: Vec<(u64, Shared)> = self
            .map
            .read()
            .map_err(|_| lock_poisoned())?
            .iter()
            .map(|(id, index)| (*id, Arc::clone(index)))
            .collect();
        for (id, index) in all {
            let index = read(&index)?;
            // Writers hold the index exclusively from their store write to
            // their index update, so under this read lock every op of the
            // collection up to `seq` is in the index.
            let seq = store.last_seq()?;
            let started = Instant::now();
            if index.checkpoint(seq)? {
                tracing::debug!(
                    collection_id = id,
                    seq,
                    chunks = index.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "dense index checkpoint saved"
                );
            }
            if let Some(seq) = index.durable_through() {
                through = through.min(seq);
            }
        }
        let dropped = store.truncate_ops_through(through)?;
        if dropped > 0 {
            tracing::debug!(through, dropped, "op log truncated");
        }
        Ok(())
    }
}

fn remove_dir(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove index files"),
    }
}

/// Starts a graph rebuild on its own thread if the collection's deleted
/// share calls for one; the caller must not hold the index's lock.
pub(crate) fn maybe_rebuild(index: &Shared) {
    let Ok(guard) = index.read() else {
        return;
    };
    let Some(job) = guard.begin_rebuild() else {
        return;
    };
    let share = guard.tombstone_share();
    drop(guard);
    let target = Arc::clone(index);
    let spawned = std::thread::Builder::new()
        .name("quarry-rebuild".into())
        .spawn(move || {
            let index = target;
            let started = Instant::now();
            let live = job.len();
            // A panic in the build must not leave the collection marked as
            // rebuilding forever: give the rebuild up, a later change may
            // start another.
            let fresh = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run())) {
                Ok(fresh) => fresh,
                Err(_) => {
                    tracing::error!("the HNSW rebuild panicked; the current graph stays");
                    if let Ok(guard) = index.read() {
                        guard.abandon_rebuild();
                    }
                    return;
                }
            };
            let Ok(mut guard) = index.write() else {
                tracing::error!("an index lock was poisoned; rebuild dropped");
                return;
            };
            guard.finish_rebuild(fresh);
            drop(guard);
            tracing::info!(
                chunks = live,
                deleted_share = share,
                ms = started.elapsed().as_millis() as u64,
                "HNSW graph rebuilt without its deleted chunks"
            );
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a graph rebuild");
        if let Ok(guard) = index.read() {
            guard.abandon_rebuild();
        }
    }
}

/// Runs [`Indexes::checkpoint_all`] every `interval` until the storage is
/// dropped.
pub(crate) fn spawn_checkpointer(
    local: std::sync::Weak<super::Local>,
    interval: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("quarry-checkpoint".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(local) = local.upgrade() else {
                return;
            };
            if let Err(e) = local.indexes.checkpoint_all(&local.store) {
                tracing::error!(error = %e, "index checkpoint failed; the op log keeps the changes");
            }
        })
        .map(|_| ())
}

/// Write access to an index, mapping a poisoned lock.
pub(crate) fn write(index: &Shared) -> Result<std::sync::RwLockWriteGuard<'_, CollectionIndex>> {
    index.write().map_err(|_| lock_poisoned())
}

/// Read access to an index, mapping a poisoned lock.
pub(crate) fn read(index: &Shared) -> Result<std::sync::RwLockReadGuard<'_, CollectionIndex>> {
    index.read().map_err(|_| lock_poisoned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use quarry_core::{CollectionName, CollectionSettings, Document};
    use quarry_store::{NewChunk, NewDocument};

    use super::*;

    /// A document whose chunks are `parts`, each with a vector of its own.
    fn doc(id: &str, parts: &[&str]) -> NewDocument {
        let chunks = parts
            .iter()
            .enumerate()
            .map(|(i, part)| NewChunk {
                text: (*part).to_owned(),
                vector: vec![i as f32, part.len() as f32, -2.5],
            })
            .collect();
        let text = parts.join(" ");
        NewDocument {
            content_hash: format!("hash:{text}"),
            document: Document {
                id: id.into(),
                title: format!("title of {id}"),
                text,
                metadata: Default::default(),
            },
            chunks,
        }
    }

    #[test]
    fn a_scan_reads_every_chunk_as_a_lookup_by_id_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let (a, b) = (
            CollectionName::parse("a").unwrap(),
            CollectionName::parse("b").unwrap(),
        );
        for name in [&a, &b] {
            store
                .create_collection(name, CollectionSettings::default())
                .unwrap();
        }
        store
            .upsert_documents(
                &a,
                &[doc("d1", &["a", "bb", "ccc"]), doc("d2", &["dd", "e"])],
            )
            .unwrap();
        store
            .upsert_documents(&b, &[doc("d9", &["x", "y", "z", "w"])])
            .unwrap();
        // Replaced: its old chunks go, new ids come after d2's.
        store
            .upsert_documents(&a, &[doc("d1", &["uno", "dos"])])
            .unwrap();
        let coll = store.collection(&a).unwrap();
        let truth = StoreTruth {
            store: &store,
            collection_id: coll.id,
            counts: (coll.document_count, coll.chunk_count),
            titles: RefCell::new(HashMap::new()),
        };

        let scanned: Vec<(u64, TruthChunk)> = truth
            .scan_chunks()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let ids: Vec<u64> = scanned.iter().map(|(id, _)| *id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
        let listed: HashSet<u64> = truth
            .documents()
            .unwrap()
            .into_iter()
            .flat_map(|d| d.chunk_ids)
            .collect();
        assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), listed);
        assert_eq!(ids.len(), 4, "the other collection's chunks are not read");
        for (id, chunk) in &scanned {
            let looked = truth.chunk(*id).unwrap().unwrap();
            assert_eq!(
                (&chunk.title, &chunk.text, &chunk.vector),
                (&looked.title, &looked.text, &looked.vector)
            );
        }
        assert!(scanned
            .iter()
            .any(|(_, c)| c.text == "dos" && c.title == "title of d1"));
    }
}
