//! Property test of checkpoints and recovery: random sequences of upserts,
//! deletes, checkpoints, graph rebuilds, writes the index never saw (a crash
//! between the store's write and the index's), crashes and damaged files.
//! After every reopen the indexes must hold exactly what the model store
//! holds, and find it.

// Helpers outside #[test] functions unwrap too: a failure here is the
// test failing.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::path::Path;

use proptest::prelude::*;
use quarry_core::{CollectionSettings, Filter, MetaValue, Metadata};
use quarry_index::{
    Change, CollectionIndex, Fusion, IndexedChunk, IndexedDocument, Mode, Recovered, SearchQuery,
    Truth, TruthChunk, TruthDocument,
};

const DIM: usize = 16;

/// The store, in memory: documents, chunks and an op log.
#[derive(Default)]
struct Model {
    docs: BTreeMap<String, (Metadata, Vec<u64>)>,
    chunks: HashMap<u64, TruthChunk>,
    log: Vec<Change>,
    seq: u64,
    next_chunk: u64,
}

fn vector(id: u64) -> Vec<f32> {
    let mut state = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

impl Model {
    /// Writes a document version; returns what the index should receive.
    fn upsert(&mut self, doc: u8, chunks: usize) -> (IndexedDocument, u64) {
        let id = format!("doc{doc}");
        let removed = self.docs.remove(&id).map(|(_, c)| c).unwrap_or_default();
        for c in &removed {
            self.chunks.remove(c);
        }
        let title = format!("title{doc}");
        let mut indexed = Vec::new();
        for _ in 0..chunks {
            self.next_chunk += 1;
            let cid = self.next_chunk;
            let chunk = TruthChunk {
                title: title.clone(),
                text: format!("tok{cid} common words"),
                vector: vector(cid),
            };
            indexed.push(IndexedChunk {
                id: cid,
                text: chunk.text.clone(),
                vector: chunk.vector.clone(),
            });
            self.chunks.insert(cid, chunk);
        }
        // The version changes with every write, so that a reopen that
        // kept a stale document table would fail the filter on it.
        let metadata = Metadata::from([
            ("doc".to_owned(), MetaValue::Int(doc as i64)),
            ("version".to_owned(), MetaValue::Int(self.seq as i64 + 1)),
        ]);
        let added: Vec<u64> = indexed.iter().map(|c| c.id).collect();
        self.docs
            .insert(id.clone(), (metadata.clone(), added.clone()));
        self.seq += 1;
        self.log.push(Change {
            seq: self.seq,
            document: id.clone(),
            added,
            removed,
        });
        (
            IndexedDocument {
                id,
                title,
                metadata,
                chunks: indexed,
            },
            self.seq,
        )
    }

    fn delete(&mut self, doc: u8) -> Option<(String, u64)> {
        let id = format!("doc{doc}");
        let (_, removed) = self.docs.remove(&id)?;
        for c in &removed {
            self.chunks.remove(c);
        }
        self.seq += 1;
        self.log.push(Change {
            seq: self.seq,
            document: id.clone(),
            added: Vec::new(),
            removed,
        });
        Some((id, self.seq))
    }

    fn live(&self) -> HashSet<u64> {
        self.chunks.keys().copied().collect()
    }
}

impl Truth for Model {
    type Error = Infallible;
    fn documents(&self) -> Result<Vec<TruthDocument>, Infallible> {
        Ok(self
            .docs
            .iter()
            .map(|(id, (metadata, chunk_ids))| TruthDocument {
                id: id.clone(),
                metadata: metadata.clone(),
                chunk_ids: chunk_ids.clone(),
            })
            .collect())
    }
    fn document(&self, id: &str) -> Result<Option<TruthDocument>, Infallible> {
        Ok(self
            .docs
            .get(id)
            .map(|(metadata, chunk_ids)| TruthDocument {
                id: id.to_owned(),
                metadata: metadata.clone(),
                chunk_ids: chunk_ids.clone(),
            }))
    }
    fn counts(&self) -> Result<(u64, u64), Infallible> {
        Ok((self.docs.len() as u64, self.chunks.len() as u64))
    }
    fn changes_after(&self, seq: u64) -> Result<Vec<Change>, Infallible> {
        Ok(self.log.iter().filter(|c| c.seq > seq).cloned().collect())
    }
    fn chunk(&self, id: u64) -> Result<Option<TruthChunk>, Infallible> {
        Ok(self.chunks.get(&id).cloned())
    }
    fn scan_chunks(&self) -> Box<dyn Iterator<Item = Result<(u64, TruthChunk), Infallible>> + '_> {
        Box::new(self.chunks.iter().map(|(id, c)| Ok((*id, c.clone()))))
    }
    fn last_seq(&self) -> Result<u64, Infallible> {
        Ok(self.seq)
    }
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    DenseCurrent,
    DenseGraph,
    KeywordMeta,
    /// The saved document table is garbage.
    Documents,
    /// The document table is an older one (as if a save of it was lost).
    StaleDocuments,
    Everything,
}

#[derive(Debug, Clone)]
enum Step {
    Upsert(u8, usize),
    Delete(u8),
    /// Save the graph; rebuild it if tombstones call for it.
    Checkpoint,
    /// The store took the write, the process died before the index did.
    UnappliedUpsert(u8, usize),
    Crash(Damage),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..10, 1usize..4).prop_map(|(d, n)| Step::Upsert(d, n)),
        3 => (0u8..10).prop_map(Step::Delete),
        2 => Just(Step::Checkpoint),
        1 => (0u8..10, 1usize..4).prop_map(|(d, n)| Step::UnappliedUpsert(d, n)),
        2 => prop_oneof![
            4 => Just(Damage::None),
            1 => Just(Damage::DenseCurrent),
            1 => Just(Damage::DenseGraph),
            1 => Just(Damage::KeywordMeta),
            1 => Just(Damage::Documents),
            1 => Just(Damage::StaleDocuments),
            1 => Just(Damage::Everything),
        ]
        .prop_map(Step::Crash),
    ]
}

fn damage(dir: &Path, how: &Damage, stale: Option<&[u8]>) {
    let dense = dir.join("dense");
    match how {
        Damage::None => {}
        Damage::DenseCurrent => std::fs::write(dense.join("CURRENT"), "ckpt-gone").unwrap(),
        // Every open and every create leaves a checkpoint behind.
        Damage::DenseGraph => {
            let name = std::fs::read_to_string(dense.join("CURRENT")).unwrap();
            let graph = dense.join(name).join("links0.u32");
            if graph.exists() {
                std::fs::write(graph, b"garbage").unwrap();
            }
        }
        Damage::KeywordMeta => std::fs::write(dir.join("keyword").join("meta.json"), b"{").unwrap(),
        Damage::Documents => std::fs::write(dir.join("documents.bin"), b"QRYDOCS\x01junk").unwrap(),
        Damage::StaleDocuments => {
            if let Some(old) = stale {
                std::fs::write(dir.join("documents.bin"), old).unwrap();
            }
        }
        Damage::Everything => std::fs::remove_dir_all(dir).unwrap(),
    }
}

fn check(index: &CollectionIndex, model: &Model) -> Result<(), TestCaseError> {
    let live = model.live();
    prop_assert_eq!(index.len(), live.len());
    prop_assert_eq!(index.dense().ids().collect::<HashSet<_>>(), live.clone());
    prop_assert_eq!(index.keyword().ids().unwrap(), live);
    let query = |text: &str, vector: &[f32], mode, filter: Option<&Filter>| {
        index
            .search(&SearchQuery {
                text,
                vector: Some(vector),
                mode,
                filter,
                fusion: Fusion::default(),
                top_k: 3,
                depth: 20,
            })
            .unwrap()
    };
    for (id, chunk) in &model.chunks {
        let dense = query("", &chunk.vector, Mode::Dense, None);
        prop_assert_eq!(dense[0].id, *id, "dense search for chunk {}", id);
        let keyword = query(&format!("tok{id}"), &chunk.vector, Mode::Keyword, None);
        prop_assert_eq!(keyword[0].id, *id, "keyword search for chunk {}", id);
    }
    // The document table behind filters agrees too, with each document's
    // current version.
    for (doc, (metadata, chunks)) in &model.docs {
        let filter = Filter::And(vec![
            Filter::Equals {
                key: "doc".into(),
                value: metadata["doc"].clone(),
            },
            Filter::Equals {
                key: "version".into(),
                value: metadata["version"].clone(),
            },
        ]);
        let hits = query("common", &vector(0), Mode::Hybrid, Some(&filter));
        prop_assert_eq!(hits.len(), chunks.len().min(3), "filter on {}", doc);
        prop_assert!(
            hits.iter().all(|h| chunks.contains(&h.id)),
            "filter on {}",
            doc
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn indexes_agree_with_the_store_after_any_crash(steps in prop::collection::vec(step(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c1");
        let settings = CollectionSettings::default();
        let mut model = Model::default();
        let mut index = CollectionIndex::create(Some(&dir), settings, 0.2, 0).unwrap();
        let mut stale: Option<Vec<u8>> = None;
        for step in steps {
            match step {
                Step::Upsert(doc, n) => {
                    let (d, seq) = model.upsert(doc, n);
                    index.upsert(vec![d], seq).unwrap();
                }
                Step::Delete(doc) => {
                    if let Some((id, seq)) = model.delete(doc) {
                        index.remove(&[id], seq).unwrap();
                    }
                }
                Step::Checkpoint => {
                    // The table this checkpoint replaces, for StaleDocuments.
                    stale = std::fs::read(dir.join("documents.bin")).ok();
                    index.checkpoint(model.seq).unwrap();
                    if let Some(job) = index.begin_rebuild() {
                        index.finish_rebuild(job.run());
                    }
                }
                Step::UnappliedUpsert(doc, n) => {
                    model.upsert(doc, n);
                    drop(index);
                    index = CollectionIndex::recover(&dir, settings, 0.2, &model).unwrap().0;
                    check(&index, &model)?;
                }
                Step::Crash(how) => {
                    drop(index);
                    damage(&dir, &how, stale.as_deref());
                    let (reopened, report) =
                        CollectionIndex::recover(&dir, settings, 0.2, &model).unwrap();
                    if matches!(how, Damage::Everything) {
                        let dense_rebuilt = matches!(report.dense, Recovered::Rebuilt { .. });
                        let keyword_rebuilt = matches!(report.keyword, Recovered::Rebuilt { .. });
                        prop_assert!(dense_rebuilt && keyword_rebuilt);
                    }
                    index = reopened;
                    check(&index, &model)?;
                }
            }
        }
        drop(index);
        let (index, _) = CollectionIndex::recover(&dir, settings, 0.2, &model).unwrap();
        check(&index, &model)?;
    }
}
