//! Store tests: unit tests of each operation, and a property test that
//! random operation sequences agree with an in-memory model across reopens.

use std::collections::BTreeMap;

use proptest::prelude::*;
use quarry_core::{CollectionName, CollectionSettings, Document, Record, RecordId};

use super::*;

/// Opens a store again after a `Store` on it was dropped in this process:
/// sled's background flusher may hold the directory lock a moment longer.
fn reopen(path: &std::path::Path) -> Store {
    reopen_with(path, None).unwrap()
}

fn reopen_with(path: &std::path::Path, key: Option<crate::RecordKey>) -> Result<Store, StoreError> {
    for _ in 0..100 {
        match Store::open_with(path, key.clone()) {
            Err(StoreError::Open { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other,
        }
    }
    Store::open_with(path, key)
}

fn name(s: &str) -> CollectionName {
    CollectionName::parse(s).unwrap()
}

fn doc(id: &str, text: &str, chunks: usize) -> NewDocument {
    NewDocument {
        document: Document {
            id: id.into(),
            title: format!("title of {id}"),
            text: text.into(),
            metadata: Default::default(),
        },
        content_hash: format!("hash:{text}"),
        chunks: (0..chunks)
            .map(|i| NewChunk {
                text: format!("{text} part {i}"),
                vector: vec![i as f32, 1.0, -2.5],
            })
            .collect(),
    }
}

fn record(session: &str, question: &str) -> Record {
    Record {
        id: RecordId(0),
        created_at: 1,
        collection: "c".into(),
        question: question.into(),
        answer: format!("answer to {question}"),
        session_id: session.into(),
        principal: String::new(),
        retrieved: vec![],
        prompt: String::new(),
        citations: vec![],
        generator_model: String::new(),
        embedding_model: String::new(),
        generation_json: String::new(),
        prompt_tokens: 0,
        answer_tokens: 0,
        timings: Default::default(),
        finish_reason: String::new(),
        rating: None,
        comment: String::new(),
        previous_record_id: None,
        answer_mode: Default::default(),
        generated_answer: String::new(),
        evidence: vec![],
        sentences: vec![],
        supported_share: None,
        replaced_sentences: 0,
        dropped_sentences: 0,
    }
}

#[test]
fn collections_create_get_list_drop() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store
        .create_collection(&name("a"), CollectionSettings::default())
        .unwrap();
    store
        .create_collection(&name("b"), CollectionSettings::default())
        .unwrap();
    assert!(matches!(
        store.create_collection(&name("a"), CollectionSettings::default()),
        Err(StoreError::CollectionExists(n)) if n == "a"
    ));
    assert_eq!(store.collection(&name("a")).unwrap(), a);
    let names: Vec<_> = store
        .list_collections()
        .unwrap()
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);

    store
        .upsert_documents(&name("a"), &[doc("d1", "x", 3)])
        .unwrap();
    let dropped = store.drop_collection(&name("a")).unwrap();
    assert_eq!((dropped.documents, dropped.chunks), (1, 3));
    assert!(matches!(
        store.collection(&name("a")),
        Err(StoreError::CollectionNotFound(_))
    ));
    assert!(matches!(
        store.drop_collection(&name("a")),
        Err(StoreError::CollectionNotFound(_))
    ));
    // Nothing of the dropped collection is left behind.
    assert_eq!(store.chunks(a.id).count(), 0);
    assert_eq!(store.vectors(a.id).count(), 0);
    assert_eq!(store.documents(a.id).count(), 0);
    // A re-created collection gets a fresh id and starts empty.
    let again = store
        .create_collection(&name("a"), CollectionSettings::default())
        .unwrap();
    assert_ne!(again.id, a.id);
    assert_eq!(again.document_count, 0);
}

#[test]
fn upsert_replaces_and_skips_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = name("c");
    let coll = store
        .create_collection(&c, CollectionSettings::default())
        .unwrap();

    let first = store
        .upsert_documents(&c, &[doc("d1", "one", 2), doc("d2", "two", 1)])
        .unwrap();
    assert_eq!(first.statuses, [UpsertStatus::Added, UpsertStatus::Added]);
    assert_eq!(first.added_chunks, [1, 2, 3]);

    let second = store
        .upsert_documents(&c, &[doc("d1", "one", 2), doc("d2", "TWO", 2)])
        .unwrap();
    assert_eq!(
        second.statuses,
        [UpsertStatus::Unchanged, UpsertStatus::Updated]
    );
    assert_eq!(second.removed_chunks, [3]);
    assert_eq!(second.added_chunks, [4, 5]);

    let info = store.collection(&c).unwrap();
    assert_eq!((info.document_count, info.chunk_count), (2, 4));
    assert!(store.chunk(coll.id, 3).unwrap().is_none());
    assert!(store.vector(coll.id, 3).unwrap().is_none());
    assert_eq!(store.chunk(coll.id, 4).unwrap().unwrap().text, "TWO part 0");
    assert_eq!(
        store.vector(coll.id, 5).unwrap().unwrap(),
        vec![1.0, 1.0, -2.5]
    );
    assert_eq!(store.document(&c, "d2").unwrap().chunk_ids, [4, 5]);

    let dup = store.upsert_documents(&c, &[doc("d9", "a", 1), doc("d9", "b", 1)]);
    match dup {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "documents[1].id"),
        other => panic!("expected a duplicate-id error, got {other:?}"),
    }
    assert!(matches!(
        store.document(&c, "d9"),
        Err(StoreError::DocumentNotFound { .. })
    ));
}

#[test]
fn oplog_orders_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = name("c");
    store
        .create_collection(&c, CollectionSettings::default())
        .unwrap();
    store.upsert_documents(&c, &[doc("d1", "one", 2)]).unwrap();
    store.upsert_documents(&c, &[doc("d1", "uno", 1)]).unwrap();
    let outcome = store
        .delete_documents(&c, &["d1".into(), "missing".into()])
        .unwrap();
    assert_eq!(outcome.deleted, ["d1"]);
    assert_eq!(outcome.removed_chunks, [3]);
    assert_eq!(outcome.last_seq, 4);

    let ops: Vec<Op> = store.ops_after(0).collect::<Result<_>>().unwrap();
    let seqs: Vec<u64> = ops.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(
        ops[2].kind,
        OpKind::UpsertDocument {
            document_id: "d1".into(),
            added: vec![3],
            removed: vec![1, 2]
        }
    );
    assert_eq!(store.last_seq().unwrap(), 4);
    assert_eq!(store.ops_after(2).count(), 2);

    // In batches of 2: two batches, and the entry after `seq` stays.
    assert_eq!(store.truncate_ops_in_batches(3, 2).unwrap(), 3);
    assert_eq!(store.ops_after(0).count(), 1);
    assert_eq!(store.ops_after(0).next().unwrap().unwrap().seq, 4);
    assert_eq!(store.truncate_ops_through(3).unwrap(), 0);
    // Truncation never rewinds the sequence.
    store.upsert_documents(&c, &[doc("d2", "two", 1)]).unwrap();
    assert_eq!(store.last_seq().unwrap(), 5);
}

#[test]
fn records_page_newest_first_and_erase_by_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<RecordId> = (0..5)
        .map(|i| {
            let session = if i % 2 == 0 { "even" } else { "odd" };
            store
                .insert_record(record(session, &format!("q{i}")))
                .unwrap()
                .id
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let newest: Vec<String> = store
        .records_newest_first(None)
        .map(|r| r.unwrap().question)
        .collect();
    assert_eq!(newest, ["q4", "q3", "q2", "q1", "q0"]);
    let page2: Vec<String> = store
        .records_newest_first(Some(ids[3]))
        .map(|r| r.unwrap().question)
        .collect();
    assert_eq!(page2, ["q2", "q1", "q0"]);

    let rated = store
        .update_record(ids[1], |r| {
            r.rating = Some(4);
            r.comment = "good".into();
        })
        .unwrap();
    assert_eq!(store.record(ids[1]).unwrap(), rated);
    let odd: Vec<RecordId> = store
        .session_record_ids("odd")
        .map(|id| id.unwrap())
        .collect();
    assert_eq!(odd, [ids[3], ids[1]]);
    // A session id that is a prefix of another does not see its records.
    assert_eq!(store.session_record_ids("od").count(), 0);
    let secret = store.page_token_secret().unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(store.page_token_secret().unwrap(), secret);

    assert_eq!(store.delete_session_records("even").unwrap(), 3);
    assert_eq!(store.record_count(), 2);
    assert!(matches!(
        store.record(ids[0]),
        Err(StoreError::RecordNotFound(_))
    ));
    assert_eq!(store.delete_records(&[ids[1], ids[0]]).unwrap(), 1);
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .meta
            .insert(FORMAT_KEY, &(FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    let err = Store::open(dir.path()).err().expect("must refuse");
    assert!(matches!(err, StoreError::FormatTooNew { found, .. } if found == FORMAT_VERSION + 1));
    assert!(err.to_string().contains("newer quarry"), "{err}");
}

#[test]
fn an_interrupted_drop_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        let c = name("c");
        let coll = store
            .create_collection(&c, CollectionSettings::default())
            .unwrap();
        store.upsert_documents(&c, &[doc("d1", "one", 4)]).unwrap();
        // Simulate a crash between the atomic unlink and the purge.
        store.collections.remove("c").unwrap();
        store.purges.insert(coll.id.to_be_bytes(), "c").unwrap();
        store.flush().unwrap();
        coll.id
    };
    let store = reopen(dir.path());
    assert_eq!(store.chunks(id).count(), 0);
    assert_eq!(store.vectors(id).count(), 0);
    assert!(store.purges.is_empty());
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    Create(u8),
    Drop(u8),
    Upsert(u8, Vec<(u8, u8, u8)>),
    Delete(u8, Vec<u8>),
    AddRecord(u8),
    DeleteSession(u8),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..3).prop_map(Step::Create),
        (0u8..3).prop_map(Step::Drop),
        (
            0u8..3,
            prop::collection::vec((0u8..6, 0u8..3, 0u8..4), 0..4)
        )
            .prop_map(|(c, d)| Step::Upsert(c, d)),
        (0u8..3, prop::collection::vec(0u8..6, 0..3)).prop_map(|(c, d)| Step::Delete(c, d)),
        (0u8..3).prop_map(Step::AddRecord),
        (0u8..3).prop_map(Step::DeleteSession),
        Just(Step::Reopen),
    ]
}

/// The model: collection -> document id -> (content version, chunk count).
type Model = BTreeMap<String, BTreeMap<String, (u8, u8)>>;

fn check(store: &Store, model: &Model, sessions: &BTreeMap<String, usize>) {
    let listed = store.list_collections().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|c| c.name.to_string())
            .collect::<Vec<_>>(),
        model.keys().cloned().collect::<Vec<_>>()
    );
    for coll in listed {
        let docs = &model[coll.name.as_str()];
        let chunks: u64 = docs.values().map(|(_, n)| *n as u64).sum();
        assert_eq!(coll.document_count, docs.len() as u64);
        assert_eq!(coll.chunk_count, chunks);
        assert_eq!(store.chunks(coll.id).count() as u64, chunks);
        assert_eq!(store.vectors(coll.id).count() as u64, chunks);
        let stored: Vec<StoredDocument> = store.documents(coll.id).map(|d| d.unwrap()).collect();
        assert_eq!(stored.len(), docs.len());
        for d in stored {
            let (version, n) = docs[&d.document.id];
            assert_eq!(d.content_hash, format!("hash:v{version}"));
            assert_eq!(d.chunk_ids.len(), n as usize);
            for (i, id) in d.chunk_ids.iter().enumerate() {
                let chunk = store.chunk(coll.id, *id).unwrap().unwrap();
                assert_eq!(chunk.document_id, d.document.id);
                assert_eq!(chunk.text, format!("v{version} part {i}"));
                assert_eq!(store.vector(coll.id, *id).unwrap().unwrap()[0], i as f32);
            }
        }
    }
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for r in store.records_oldest_first() {
        *counted.entry(r.unwrap().session_id).or_default() += 1;
    }
    counted.retain(|_, n| *n > 0);
    let mut expected = sessions.clone();
    expected.retain(|_, n| *n > 0);
    assert_eq!(counted, expected);
    // The session index holds exactly each session's records, newest first.
    for (session, n) in sessions {
        let ids: Vec<RecordId> = store
            .session_record_ids(session)
            .map(|id| id.unwrap())
            .collect();
        assert_eq!(ids.len(), *n, "{session}");
        assert!(ids.windows(2).all(|w| w[0] > w[1]));
        for id in ids {
            assert_eq!(&store.record(id).unwrap().session_id, session);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_a_model_across_reopens(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut model = Model::new();
        let mut sessions: BTreeMap<String, usize> = BTreeMap::new();
        let mut last_seq = 0;
        for s in steps {
            let cname = |c: u8| name(&format!("c{c}"));
            match s {
                Step::Create(c) => {
                    let r = store.create_collection(&cname(c), CollectionSettings::default());
                    let exists = model.contains_key(cname(c).as_str());
                    prop_assert_eq!(r.is_err(), exists);
                    model.entry(cname(c).to_string()).or_default();
                }
                Step::Drop(c) => {
                    let r = store.drop_collection(&cname(c));
                    prop_assert_eq!(r.is_ok(), model.remove(cname(c).as_str()).is_some());
                }
                Step::Upsert(c, docs) => {
                    // Later duplicates in a batch are dropped: the store rejects them.
                    let mut batch: BTreeMap<u8, (u8, u8)> = BTreeMap::new();
                    for (d, v, n) in docs { batch.entry(d).or_insert((v, n)); }
                    let new: Vec<NewDocument> = batch.iter()
                        .map(|(d, (v, n))| doc(&format!("d{d}"), &format!("v{v}"), *n as usize))
                        .collect();
                    let r = store.upsert_documents(&cname(c), &new);
                    match model.get_mut(cname(c).as_str()) {
                        None => prop_assert!(matches!(r, Err(StoreError::CollectionNotFound(_)))),
                        Some(docs) => {
                            let out = r.unwrap();
                            for ((d, (v, n)), status) in batch.iter().zip(&out.statuses) {
                                let expected = match docs.get(&format!("d{d}")) {
                                    None => UpsertStatus::Added,
                                    Some((old_v, _)) if old_v == v => UpsertStatus::Unchanged,
                                    Some(_) => UpsertStatus::Updated,
                                };
                                prop_assert_eq!(*status, expected);
                                if expected != UpsertStatus::Unchanged {
                                    docs.insert(format!("d{d}"), (*v, *n));
                                }
                            }
                        }
                    }
                }
                Step::Delete(c, ids) => {
                    let ids: Vec<String> = ids.iter().map(|d| format!("d{d}")).collect();
                    let r = store.delete_documents(&cname(c), &ids);
                    match model.get_mut(cname(c).as_str()) {
                        None => prop_assert!(r.is_err()),
                        Some(docs) => {
                            let deleted = r.unwrap().deleted;
                            let mut expected = Vec::new();
                            for id in &ids {
                                if docs.remove(id).is_some() { expected.push(id.clone()); }
                            }
                            prop_assert_eq!(deleted, expected);
                        }
                    }
                }
                Step::AddRecord(s) => {
                    store.insert_record(record(&format!("s{s}"), "q")).unwrap();
                    *sessions.entry(format!("s{s}")).or_default() += 1;
                }
                Step::DeleteSession(s) => {
                    let n = store.delete_session_records(&format!("s{s}")).unwrap();
                    prop_assert_eq!(n as usize, sessions.remove(&format!("s{s}")).unwrap_or(0));
                }
                Step::Reopen => {
                    drop(store);
                    store = reopen(dir.path());
                }
            }
            let seq = store.last_seq().unwrap();
            prop_assert!(seq >= last_seq, "the op log sequence went back");
            last_seq = seq;
            check(&store, &model, &sessions);
        }
        drop(store);
        let store = reopen(dir.path());
        check(&store, &model, &sessions);
    }
}

#[test]
fn sealed_records_open_only_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::RecordKey::from_hex(&"1a".repeat(32)).unwrap();
    let other = crate::RecordKey::from_hex(&"2b".repeat(32)).unwrap();
    let id = {
        let store = Store::open_with(dir.path(), Some(key.clone())).unwrap();
        let r = store
            .insert_record(record("s", "a very private question"))
            .unwrap();
        assert_eq!(
            store.record(r.id).unwrap().question,
            "a very private question"
        );
        r.id
    };
    // Nothing on disk holds the text.
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                assert!(
                    !bytes.windows(13).any(|w| w == b"very private "),
                    "{}",
                    e.path().display()
                );
            }
        }
    }
    for wrong in [Some(other), None] {
        let err = reopen_with(dir.path(), wrong).err().expect("refused");
        assert!(matches!(err, StoreError::RecordKey(_)), "{err}");
    }
    let store = reopen_with(dir.path(), Some(key.clone())).unwrap();
    assert_eq!(
        store.record(id).unwrap().question,
        "a very private question"
    );
    assert_eq!(store.session_record_ids("s").count(), 1);
    drop(store);

    // A key cannot be added to plaintext records.
    let plain = tempfile::tempdir().unwrap();
    Store::open(plain.path())
        .unwrap()
        .insert_record(record("", "q"))
        .unwrap();
    let err = reopen_with(plain.path(), Some(key)).err().expect("refused");
    assert!(err.to_string().contains("plain text"), "{err}");
    assert!(crate::RecordKey::from_hex("abc").is_err());
}
