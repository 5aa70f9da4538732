//! A second storage backend, in memory, written only against the
//! [`crate::storage`] traits: documents, chunks and records in maps, each
//! collection's retrievers in an index without files. The engine runs on
//! it unchanged (`Engine::with_storage`), which is what the seam promises
//! a real second backend; the tests below drive the same pipeline as the
//! local backend's tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use quarry_core::{
    Chunk, CollectionInfo, CollectionName, CollectionSettings, IndexedCounts, NewDocument, Record,
    RecordId, StoredDocument, UpsertStatus,
};
use quarry_index::{CollectionIndex, IndexedChunk, IndexedDocument, Mode, SearchQuery};

use crate::storage::{
    CollectionStorage, Doomed, RecordIter, RecordStorage, Removed, Storage, Written,
};
use crate::{DeletedCollection, EngineError, Result, SearchHit};

#[derive(Default)]
pub(crate) struct MemoryStorage {
    collections: Mutex<BTreeMap<String, Arc<MemoryCollection>>>,
    records: Mutex<BTreeMap<u64, Record>>,
    next_record: Mutex<u64>,
}

struct MemoryCollection {
    name: CollectionName,
    settings: CollectionSettings,
    state: RwLock<State>,
}

struct State {
    docs: BTreeMap<String, StoredDocument>,
    chunks: HashMap<u64, (Chunk, Vec<f32>)>,
    next_chunk: u64,
    seq: u64,
    index: CollectionIndex,
    dropped: bool,
}

fn not_found(what: String) -> EngineError {
    EngineError::NotFound(what)
}

impl Storage for MemoryStorage {
    fn create_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        _placement: quarry_core::Placement,
    ) -> Result<CollectionInfo> {
        let mut all = self.collections.lock().unwrap();
        if all.contains_key(name.as_str()) {
            return Err(EngineError::AlreadyExists(format!(
                "collection {name:?} exists"
            )));
        }
        let index = CollectionIndex::create(None, settings, 0.2, 0)?;
        let coll = Arc::new(MemoryCollection {
            name: name.clone(),
            settings,
            state: RwLock::new(State {
                docs: BTreeMap::new(),
                chunks: HashMap::new(),
                next_chunk: 1,
                seq: 0,
                index,
                dropped: false,
            }),
        });
        all.insert(name.to_string(), Arc::clone(&coll));
        coll.info()
    }

    fn collection(&self, name: &CollectionName) -> Result<Arc<dyn CollectionStorage>> {
        match self.collections.lock().unwrap().get(name.as_str()) {
            Some(c) => Ok(Arc::clone(c) as Arc<dyn CollectionStorage>),
            None => Err(not_found(format!("collection {name:?} does not exist"))),
        }
    }

    fn collection_names(&self) -> Result<Vec<CollectionName>> {
        Ok(self
            .collections
            .lock()
            .unwrap()
            .values()
            .map(|c| c.name.clone())
            .collect())
    }

    fn drop_collection(&self, name: &CollectionName) -> Result<DeletedCollection> {
        let coll = self
            .collections
            .lock()
            .unwrap()
            .remove(name.as_str())
            .ok_or_else(|| not_found(format!("collection {name:?} does not exist")))?;
        let mut state = coll.state.write().unwrap();
        state.dropped = true;
        Ok(DeletedCollection {
            name: name.clone(),
            documents: state.docs.len() as u64,
            chunks: state.chunks.len() as u64,
        })
    }

    fn records(&self) -> &dyn RecordStorage {
        self
    }

    fn check_room(&self) -> Result<()> {
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    fn writes_failed(&self) -> bool {
        false
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

impl MemoryCollection {
    fn live(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>> {
        let state = self.state.write().unwrap();
        if state.dropped {
            return Err(not_found(format!("collection {:?} was deleted", self.name)));
        }
        Ok(state)
    }
}

impl CollectionStorage for MemoryCollection {
    fn name(&self) -> &CollectionName {
        &self.name
    }

    fn settings(&self) -> &CollectionSettings {
        &self.settings
    }

    fn info(&self) -> Result<CollectionInfo> {
        let state = self.state.read().unwrap();
        Ok(CollectionInfo {
            name: self.name.clone(),
            settings: self.settings,
            created_at_ms: 0,
            document_count: state.docs.len() as u64,
            chunk_count: state.chunks.len() as u64,
            indexed: IndexedCounts {
                dense: state.index.len() as u64,
                keyword: state.index.keyword().len(),
            },
            placement: None,
            note: String::new(),
        })
    }

    fn document(&self, id: &str) -> Result<StoredDocument> {
        self.state
            .read()
            .unwrap()
            .docs
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(format!("document {id:?} does not exist")))
    }

    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .state
            .read()
            .unwrap()
            .docs
            .get(id)
            .map(|d| d.content_hash.clone()))
    }

    fn write(&self, docs: Vec<NewDocument>) -> Result<Written> {
        let mut state = self.live()?;
        let state = &mut *state;
        let mut written = Written::default();
        let mut changed = Vec::new();
        state.seq += 1;
        for doc in docs {
            let status = match state.docs.get(&doc.document.id) {
                Some(old) if old.content_hash == doc.content_hash => {
                    written.statuses.push(UpsertStatus::Unchanged);
                    continue;
                }
                Some(old) => {
                    for id in &old.chunk_ids {
                        state.chunks.remove(id);
                    }
                    UpsertStatus::Updated
                }
                None => UpsertStatus::Added,
            };
            written.statuses.push(status);
            let mut chunk_ids = Vec::new();
            let mut indexed = Vec::new();
            for (i, c) in doc.chunks.into_iter().enumerate() {
                let id = state.next_chunk;
                state.next_chunk += 1;
                chunk_ids.push(id);
                let chunk = Chunk {
                    id,
                    document_id: doc.document.id.clone(),
                    index: i as u32,
                    text: c.text.clone(),
                };
                state.chunks.insert(id, (chunk, c.vector.clone()));
                indexed.push(IndexedChunk {
                    id,
                    text: c.text,
                    vector: c.vector,
                });
            }
            written.chunks += chunk_ids.len() as u64;
            changed.push(IndexedDocument {
                id: doc.document.id.clone(),
                title: doc.document.title.clone(),
                metadata: doc.document.metadata.clone(),
                chunks: indexed,
            });
            state.docs.insert(
                doc.document.id.clone(),
                StoredDocument {
                    document: doc.document,
                    content_hash: doc.content_hash,
                    chunk_ids,
                    updated_seq: state.seq,
                },
            );
        }
        let seq = state.seq;
        state.index.upsert(changed, seq)?;
        Ok(written)
    }

    fn delete(&self, which: Doomed<'_>) -> Result<Removed> {
        let mut state = self.live()?;
        let state = &mut *state;
        let ids: Vec<String> = match which {
            Doomed::Ids(ids) => ids.to_vec(),
            Doomed::Matching(filter) => state
                .docs
                .values()
                .filter(|d| filter.matches(&d.document.metadata))
                .map(|d| d.document.id.clone())
                .collect(),
        };
        let mut removed = Removed::default();
        let mut deleted = Vec::new();
        for id in ids {
            if let Some(doc) = state.docs.remove(&id) {
                for c in &doc.chunk_ids {
                    state.chunks.remove(c);
                }
                removed.documents += 1;
                removed.chunks += doc.chunk_ids.len() as u64;
                deleted.push(id);
            }
        }
        state.seq += 1;
        let seq = state.seq;
        state.index.remove(&deleted, seq)?;
        Ok(removed)
    }

    fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<SearchHit>> {
        let state = self.state.read().unwrap();
        let fused = state.index.search(query)?;
        Ok(fused
            .into_iter()
            .filter_map(|f| {
                let (chunk, _) = state.chunks.get(&f.id)?;
                let doc = &state.docs.get(&chunk.document_id)?.document;
                Some(SearchHit {
                    chunk_id: f.id,
                    document_id: doc.id.clone(),
                    title: doc.title.clone(),
                    text: chunk.text.clone(),
                    score: f.score,
                    metadata: doc.metadata.clone(),
                    dense: f.dense,
                    keyword: f.keyword,
                    chunk_index: chunk.index,
                })
            })
            .collect())
    }

    fn vector(&self, chunk_id: u64) -> Result<Option<Vec<f32>>> {
        Ok(self
            .state
            .read()
            .unwrap()
            .chunks
            .get(&chunk_id)
            .map(|(_, v)| v.clone()))
    }

    fn word_weights(&self, words: &[&str]) -> Result<Vec<Option<f32>>> {
        Ok(self.state.read().unwrap().index.keyword().idf(words))
    }
}

impl RecordStorage for MemoryStorage {
    fn insert(&self, mut record: Record) -> Result<Record> {
        let mut next = self.next_record.lock().unwrap();
        *next += 1;
        record.id = RecordId(*next);
        self.records.lock().unwrap().insert(*next, record.clone());
        Ok(record)
    }

    fn get(&self, id: RecordId) -> Result<Record> {
        self.records
            .lock()
            .unwrap()
            .get(&id.0)
            .cloned()
            .ok_or_else(|| not_found(format!("record {} does not exist", id.0)))
    }

    fn update(&self, id: RecordId, change: &dyn Fn(&mut Record)) -> Result<Record> {
        let mut records = self.records.lock().unwrap();
        let record = records
            .get_mut(&id.0)
            .ok_or_else(|| not_found(format!("record {} does not exist", id.0)))?;
        change(record);
        Ok(record.clone())
    }

    fn newest_first(&self, before: Option<RecordId>) -> RecordIter<'_> {
        let records: Vec<Record> = self
            .records
            .lock()
            .unwrap()
            .values()
            .rev()
            .filter(|r| before.is_none_or(|b| r.id.0 < b.0))
            .cloned()
            .collect();
        Box::new(records.into_iter().map(Ok))
    }

    fn oldest_first(&self) -> RecordIter<'_> {
        let records: Vec<Record> = self.records.lock().unwrap().values().cloned().collect();
        Box::new(records.into_iter().map(Ok))
    }

    fn session_ids(&self, session_id: &str) -> Box<dyn Iterator<Item = Result<RecordId>> + '_> {
        let ids: Vec<RecordId> = self
            .records
            .lock()
            .unwrap()
            .values()
            .rev()
            .filter(|r| r.session_id == session_id)
            .map(|r| r.id)
            .collect();
        Box::new(ids.into_iter().map(Ok))
    }

    fn delete(&self, ids: &[RecordId]) -> Result<u64> {
        let mut records = self.records.lock().unwrap();
        Ok(ids
            .iter()
            .filter(|id| records.remove(&id.0).is_some())
            .count() as u64)
    }

    fn delete_session(&self, session_id: &str) -> Result<u64> {
        let mut records = self.records.lock().unwrap();
        let before = records.len();
        records.retain(|_, r| r.session_id != session_id);
        Ok((before - records.len()) as u64)
    }

    fn page_token_secret(&self) -> Result<Vec<u8>> {
        Ok(b"in-memory page token secret....".to_vec())
    }
}

mod tests {
    use super::*;
    use crate::tests::{doc, TestEngine};
    use crate::{AnswerMode, AskEvent, AskRequest, DeleteSelector, SearchRequest};

    fn texts() -> Vec<&'static str> {
        vec![
            "the river otter eats fish and crabs",
            "granite is an igneous rock with quartz",
            "the aurora glows green over the arctic",
            "otter",
            "what does the river otter eat",
            "which rock has quartz",
        ]
    }

    fn query(c: &CollectionName, text: &str, mode: Mode) -> SearchRequest {
        SearchRequest {
            collection: c.clone(),
            query: text.into(),
            top_k: 3,
            mode,
            filter: None,
            fusion: Default::default(),
            sentence_weight: 0.0,
        }
    }

    #[tokio::test]
    async fn the_engine_runs_unchanged_on_a_second_backend() {
        let t = TestEngine::on_storage(&texts(), Arc::new(MemoryStorage::default()));
        let c = t
            .load(
                "mem",
                &[
                    ("otter", texts()[0]),
                    ("granite", texts()[1]),
                    ("aurora", texts()[2]),
                ],
            )
            .await;
        for mode in [Mode::Hybrid, Mode::Dense, Mode::Keyword] {
            let hits = t
                .engine
                .search(query(&c, "which rock has quartz", mode))
                .await
                .unwrap();
            assert_eq!(hits[0].document_id, "granite", "{mode:?}");
        }
        let info = t.engine.get_collection(c.clone()).await.unwrap();
        assert_eq!((info.document_count, info.chunk_count), (3, 3));
        assert_eq!(info.indexed.dense, 3);

        // Unchanged documents are skipped before embedding, by the engine.
        let again = t
            .engine
            .upsert_documents(c.clone(), vec![doc("otter", texts()[0])])
            .await
            .unwrap();
        assert_eq!((again.unchanged, again.chunks_embedded), (1, 0));

        // Extractive Ask quotes the passage and is recorded.
        let mut events = t
            .engine
            .ask(AskRequest {
                collection: c.clone(),
                question: "what does the river otter eat".into(),
                session_id: Some("s1".into()),
                history: Vec::new(),
                top_k: 2,
                filter: None,
                mode: Mode::Hybrid,
                generation: Default::default(),
                answer_mode: AnswerMode::Extractive,
                principal: String::new(),
                deadline: None,
            })
            .await
            .unwrap();
        let mut record = None;
        let mut cited = Vec::new();
        while let Some(e) = events.recv().await {
            match e.unwrap() {
                AskEvent::Citations(cs) => cited.extend(cs.into_iter().map(|c| c.document_id)),
                AskEvent::Done(d) => record = Some(d.record_id),
                _ => {}
            }
        }
        assert_eq!(cited.first().map(String::as_str), Some("otter"));
        let record = t.engine.get_record(record.unwrap()).await.unwrap();
        assert!(record.answer.contains("fish"), "{}", record.answer);

        let deleted = t
            .engine
            .delete_documents(c.clone(), DeleteSelector::Ids(vec!["otter".into()]))
            .await
            .unwrap();
        assert_eq!(deleted.documents, 1);
        let hits = t
            .engine
            .search(query(&c, "river otter", Mode::Keyword))
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.document_id != "otter"), "{hits:?}");
        t.engine.delete_collection(c.clone()).await.unwrap();
        assert!(t.engine.list_collections().await.unwrap().is_empty());
    }
}
