//! End to end: the indexes come back after a crash (SIGKILL, no final
//! checkpoint: the op log is replayed), after a clean stop (nothing to
//! replay), and after their files are damaged or deleted (rebuilt from the
//! store, with a log line saying so).

use crate::common;

use std::collections::HashMap;

use common::{data_dir, TestServer};
use quarry::proto::{self, documents_client::DocumentsClient, retrieval_client::RetrievalClient};
use tonic::transport::Channel;

const DOCS: &[(&str, &str)] = &[
    (
        "paris",
        "Paris is the capital and largest city of France, on the Seine.",
    ),
    (
        "berlin",
        "Berlin is the capital of Germany and its most populous city.",
    ),
    (
        "rust",
        "Rust is a systems programming language focused on memory safety.",
    ),
    (
        "tides",
        "Ocean tides are caused by the gravitational pull of the moon.",
    ),
    (
        "volcano",
        "A volcano is a rupture in the crust where lava and ash escape.",
    ),
];

async fn upsert(channel: &Channel, docs: &[(&str, &str)]) {
    DocumentsClient::new(channel.clone())
        .upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: docs
                .iter()
                .map(|(id, text)| proto::Document {
                    id: (*id).into(),
                    text: (*text).into(),
                    metadata: HashMap::new(),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
}

async fn top(channel: &Channel, query: &str, mode: proto::SearchMode) -> Vec<String> {
    RetrievalClient::new(channel.clone())
        .search(proto::SearchRequest {
            collection: "kb".into(),
            query: query.into(),
            top_k: 10,
            mode: mode as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.document_id)
        .collect()
}

/// What every start must find, in every mode: the state after the writes
/// below (berlin deleted, tides rewritten about the sun).
async fn assert_contents(channel: &Channel) {
    for mode in [
        proto::SearchMode::Hybrid,
        proto::SearchMode::Dense,
        proto::SearchMode::Keyword,
    ] {
        let hits = top(channel, "capital of France", mode).await;
        assert_eq!(hits[0], "paris", "{mode:?}: {hits:?}");
        assert!(!hits.contains(&"berlin".to_string()), "{mode:?}: {hits:?}");
        let hits = top(channel, "solar eclipse corona", mode).await;
        assert_eq!(hits[0], "tides", "{mode:?}: {hits:?}");
    }
    let hits = top(
        channel,
        "moon gravitational pull",
        proto::SearchMode::Keyword,
    )
    .await;
    assert!(
        !hits.contains(&"tides".to_string()),
        "the old version of tides is still indexed: {hits:?}"
    );
    let total = top(
        channel,
        "city capital language ocean volcano sun",
        proto::SearchMode::Dense,
    )
    .await;
    assert_eq!(total.len(), 4, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_recover_from_a_crash_a_clean_stop_and_damage() {
    let dir = data_dir();

    // Writes, then SIGKILL: no shutdown checkpoint, so the dense graph on
    // disk is the empty one from creation and everything is replayed.
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    common::create_collection(&channel, "kb").await;
    upsert(&channel, DOCS).await;
    DocumentsClient::new(channel.clone())
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: "kb".into(),
            ids: vec!["berlin".into()],
            filter: None,
        })
        .await
        .unwrap();
    upsert(
        &channel,
        &[(
            "tides",
            "During a solar eclipse the sun's corona becomes visible.",
        )],
    )
    .await;
    assert_contents(&channel).await;
    server.signal(libc::SIGKILL);
    server.wait_exit();

    let mut server = TestServer::start(dir.path());
    let channel = server.channel().await;
    assert_contents(&channel).await;
    let logs = server.logs();
    // Ops: create 1, five upserts 2-6, the delete 7, the rewrite 8.
    assert!(
        logs.contains("dense=checkpoint at op 1, 7 ops replayed"),
        "{logs}"
    );
    assert!(!logs.contains("rebuilt from the store"), "{logs}");
    assert!(server.stop().success());

    // A clean stop saved a checkpoint: nothing to replay.
    let mut server = TestServer::start(dir.path());
    let channel = server.channel().await;
    assert_contents(&channel).await;
    let logs = server.logs();
    assert!(
        logs.contains("dense=checkpoint at op 8, 0 ops replayed"),
        "{logs}"
    );
    assert!(!logs.contains("rebuilt from the store"), "{logs}");
    assert!(server.stop().success());

    // Damage both indexes: they are rebuilt from the store, and say so.
    let collection_dir = std::fs::read_dir(dir.path().join("indexes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(collection_dir.join("dense").join("CURRENT"), "ckpt-lost").unwrap();
    std::fs::write(collection_dir.join("keyword").join("meta.json"), "{").unwrap();
    let mut server = TestServer::start(dir.path());
    let channel = server.channel().await;
    assert_contents(&channel).await;
    let logs = server.logs();
    assert_eq!(
        logs.matches("rebuilt from the store").count(),
        4,
        "one warning and one summary field per index: {logs}"
    );
    assert!(server.stop().success());

    // And with the index directory gone altogether.
    std::fs::remove_dir_all(dir.path().join("indexes")).unwrap();
    let mut server = TestServer::start(dir.path());
    let channel = server.channel().await;
    assert_contents(&channel).await;
    assert!(server.logs().contains("rebuilt from the store"));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_most_documents_rebuilds_the_graph_while_search_answers() {
    let dir = data_dir();
    let mut server = TestServer::start(dir.path());
    let channel = server.channel().await;
    common::create_collection(&channel, "kb").await;
    let texts: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("d{i}"),
                format!("Passage number {i} about topic {}.", i % 7),
            )
        })
        .collect();
    let docs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    upsert(&channel, &docs).await;
    DocumentsClient::new(channel.clone())
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: "kb".into(),
            ids: (0..30).map(|i| format!("d{i}")).collect(),
            filter: None,
        })
        .await
        .unwrap();
    // Searches answer throughout, and never with a deleted document.
    let mut rebuilt = false;
    for _ in 0..100 {
        let hits = top(&channel, "passage about topic", proto::SearchMode::Dense).await;
        assert_eq!(hits.len(), 10, "{hits:?}");
        assert!(
            hits.iter().all(|h| h[1..].parse::<u32>().unwrap() >= 30),
            "{hits:?}"
        );
        if server.logs().contains("HNSW graph rebuilt") {
            rebuilt = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rebuilt, "no rebuild logged:\n{}", server.logs());
    let hits = top(&channel, "passage about topic", proto::SearchMode::Dense).await;
    assert_eq!(hits.len(), 10);
    assert!(server.stop().success());
}
