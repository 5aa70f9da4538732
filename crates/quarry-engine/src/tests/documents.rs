//! Upsert, search, delete and bulk loading through a real engine.

use quarry_index::{Fusion, Mode};

use super::{doc, TestEngine};
use crate::{BulkBatch, BulkError, DeleteSelector, SearchRequest};

const DOCS: &[(&str, &str)] = &[
    (
        "paris",
        "Paris is the capital of France and its largest city.",
    ),
    (
        "rust",
        "Rust is a systems programming language focused on memory safety.",
    ),
    (
        "tides",
        "Ocean tides are caused by the pull of the moon and the sun.",
    ),
    (
        "volcano",
        "A volcano is a rupture in the crust where lava and ash escape.",
    ),
];

fn words() -> Vec<&'static str> {
    let mut w: Vec<&str> = DOCS.iter().map(|d| d.1).collect();
    w.extend([
        "capital France",
        "memory safety language",
        "moon pull",
        "lava",
    ]);
    w
}

fn query(collection: &quarry_core::CollectionName, text: &str, mode: Mode) -> SearchRequest {
    SearchRequest {
        collection: collection.clone(),
        query: text.into(),
        top_k: 3,
        mode,
        filter: None,
        fusion: Fusion::default(),
        sentence_weight: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserted_documents_are_found_in_every_mode_and_deletes_remove_them() {
    let t = TestEngine::new(&words());
    let kb = t.load("kb", DOCS).await;
    for mode in [Mode::Hybrid, Mode::Dense, Mode::Keyword] {
        let hits = t
            .engine
            .search(query(&kb, "capital France", mode))
            .await
            .unwrap();
        assert_eq!(hits[0].document_id, "paris", "{mode:?}: {hits:?}");
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let hits = t
        .engine
        .search(query(&kb, "memory safety language", Mode::Hybrid))
        .await
        .unwrap();
    assert_eq!(hits[0].document_id, "rust");
    assert!(hits[0].dense.is_some() && hits[0].keyword.is_some());

    let deleted = t
        .engine
        .delete_documents(kb.clone(), DeleteSelector::Ids(vec!["paris".into()]))
        .await
        .unwrap();
    assert_eq!(deleted.documents, 1);
    for mode in [Mode::Hybrid, Mode::Dense, Mode::Keyword] {
        let hits = t
            .engine
            .search(query(&kb, "capital France", mode))
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.document_id != "paris"), "{mode:?}");
    }
    assert!(t
        .engine
        .get_document(kb.clone(), "paris".into())
        .await
        .is_err());
    let info = t.engine.get_collection(kb).await.unwrap();
    assert_eq!(info.document_count, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_document_is_not_embedded_again_and_a_changed_one_replaces_its_chunks() {
    let t = TestEngine::new(&words());
    let kb = t.load("kb", DOCS).await;
    let again = t
        .engine
        .upsert_documents(kb.clone(), vec![doc("lava", "lava")])
        .await
        .unwrap();
    assert_eq!(again.added, 1);
    let same = t
        .engine
        .upsert_documents(
            kb.clone(),
            DOCS.iter().map(|(id, text)| doc(id, text)).collect(),
        )
        .await
        .unwrap();
    assert_eq!((same.unchanged, same.chunks_embedded), (4, 0));
    // Rewriting "tides" to talk about lava makes it a lava hit.
    let changed = t
        .engine
        .upsert_documents(kb.clone(), vec![doc("tides", "lava lava lava")])
        .await
        .unwrap();
    assert_eq!(changed.updated, 1);
    let hits = t
        .engine
        .search(query(&kb, "moon pull", Mode::Keyword))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.document_id != "tides"), "{hits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_loading_keeps_the_valid_documents_and_lists_the_invalid() {
    let t = TestEngine::new(&words());
    let kb = t.load("kb", &DOCS[..1]).await;
    let summary = t
        .engine
        .bulk_upsert(
            kb.clone(),
            vec![
                doc("rust", DOCS[1].1),
                doc("blank", " \u{200B} "),
                doc("rust", "a second rust"),
                doc("tides", DOCS[2].1),
            ],
        )
        .await
        .unwrap();
    let failed: Vec<&str> = summary.failed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(failed, ["blank", "rust"], "{:?}", summary.failed);
    assert_eq!(t.engine.get_collection(kb).await.unwrap().document_count, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field() {
    let t = TestEngine::new(&words());
    let kb = t.load("kb", DOCS).await;
    let mut q = query(&kb, "capital", Mode::Hybrid);
    q.sentence_weight = 2.0;
    let e = t.engine.search(q).await.unwrap_err();
    assert!(e.to_string().starts_with("sentence_weight:"), "{e}");
    let e = t
        .engine
        .search(query(&kb, "\u{200B}", Mode::Dense))
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("query:"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stream_keeps_the_last_version_of_each_id_and_reports_failures() {
    let t = TestEngine::new(&words());
    let kb = t.load("kb", &DOCS[..1]).await;
    // Ten batches; "tides" is rewritten in every one, so only the tenth
    // version may survive, however the batches overlap.
    let batches: Vec<Result<BulkBatch, String>> = (0..10)
        .map(|i| {
            Ok(BulkBatch {
                documents: vec![
                    doc(&format!("doc{i}"), DOCS[i % DOCS.len()].1),
                    doc("tides", &format!("{} {i}", DOCS[2].1)),
                ],
                failed: vec![(format!("bad{i}"), "refused at the edge".into())],
            })
        })
        .collect();
    let total = t
        .engine
        .bulk_ingest(kb.clone(), tokio_stream::iter(batches))
        .await
        .unwrap();
    assert_eq!(total.failed.len(), 10);
    assert_eq!(total.added, 11, "{total:?}");
    let tides = t
        .engine
        .get_document(kb.clone(), "tides".into())
        .await
        .unwrap();
    assert!(
        tides.document.text.ends_with(" 9"),
        "{}",
        tides.document.text
    );
    assert_eq!(
        t.engine
            .get_collection(kb.clone())
            .await
            .unwrap()
            .document_count,
        12
    );

    // A source that fails stops the load with its error; an unknown
    // collection fails before any batch is read.
    let failing = tokio_stream::iter(vec![
        Ok(BulkBatch {
            documents: vec![doc("late", DOCS[3].1)],
            failed: Vec::new(),
        }),
        Err("client went away".to_owned()),
    ]);
    match t.engine.bulk_ingest(kb, failing).await {
        Err(BulkError::Source(e)) => assert_eq!(e, "client went away"),
        other => panic!("{other:?}"),
    }
    let unknown = quarry_core::CollectionName::parse("nope").unwrap();
    match t
        .engine
        .bulk_ingest(
            unknown,
            tokio_stream::iter(Vec::<Result<BulkBatch, String>>::new()),
        )
        .await
    {
        Err(BulkError::Engine(e)) => assert_eq!(e.kind(), crate::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}
