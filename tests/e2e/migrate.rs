//! `quarry migrate` end to end: a data directory left by a SIGKILLed
//! server (acknowledged writes, sealed records, un-checkpointed indexes)
//! is copied into Qdrant; the copy verifies its counts, a second run copies
//! nothing again, and a server on Qdrant reports the same counts, the same
//! search results and the same records as a server on the directory.

use std::collections::HashMap;

use quarry::proto::{
    self, ask_event::Event, collections_client::CollectionsClient,
    documents_client::DocumentsClient, history_client::HistoryClient, metadata_value::Kind,
    rag_client::RagClient, retrieval_client::RetrievalClient,
};
use tonic::transport::Channel;

use crate::common::{self, data_dir, Backend, TestServer};

const TOPICS: [&str; 4] = ["rivers", "mountains", "deserts", "oceans"];

fn docs() -> Vec<proto::Document> {
    (0..40)
        .map(|i| {
            let topic = TOPICS[i % 4];
            proto::Document {
                id: format!("d{i:02}"),
                title: format!("Note {i} on {topic}"),
                text: format!(
                    "Fact {i} about {topic}: specimen {} was measured at {} units in survey {}.",
                    i * 7,
                    i * 13 + 5,
                    2000 + i
                ),
                metadata: HashMap::from([(
                    "topic".to_string(),
                    proto::MetadataValue {
                        kind: Some(Kind::StringValue(topic.into())),
                    },
                )]),
                ..Default::default()
            }
        })
        .collect()
}

async fn ids(ch: &Channel, query: &str, mode: proto::SearchMode) -> Vec<String> {
    RetrievalClient::new(ch.clone())
        .search(proto::SearchRequest {
            collection: "kb".into(),
            query: query.into(),
            top_k: 5,
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

async fn questions(ch: &Channel) -> Vec<String> {
    let mut q: Vec<String> = HistoryClient::new(ch.clone())
        .list_records(proto::ListRecordsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .map(|r| r.question)
        .collect();
    q.sort();
    q
}

fn migrate(from: &std::path::Path, url: &str, prefix: &str, key: &std::path::Path) -> String {
    let out = std::process::Command::new(common::quarry_bin())
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .args([
            "--to-qdrant",
            url,
            "--qdrant-prefix",
            prefix,
            "--batch",
            "7",
        ])
        .arg("--record-key-file")
        .arg(key)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_data_directory_migrates_to_qdrant_with_equal_counts_and_results() {
    let Some(Backend::Qdrant { url, prefix }) = Backend::qdrant(
        "migrate::a_crashed_data_directory_migrates_to_qdrant_with_equal_counts_and_results",
    ) else {
        return;
    };
    let dir = data_dir();
    let key = dir.path().join("records.key");
    std::fs::write(&key, "5e".repeat(32)).unwrap();
    let key_flag = ["--record-key-file", key.to_str().unwrap()];
    let data = dir.path().join("data");

    let server = TestServer::start_with(&data, &key_flag);
    let ch = server.channel().await;
    common::create_collection(&ch, "kb").await;
    DocumentsClient::new(ch.clone())
        .upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: docs(),
        })
        .await
        .unwrap();
    for q in [
        "What was measured in survey 2013?",
        "Which specimen is about deserts?",
    ] {
        let mut s = RagClient::new(ch.clone())
            .ask(proto::AskRequest {
                collection: "kb".into(),
                question: q.into(),
                answer_mode: proto::AnswerMode::Extractive as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(e) = s.message().await.unwrap() {
            if matches!(e.event, Some(Event::Done(_))) {
                break;
            }
        }
    }
    drop(ch);
    // A crash: no shutdown, no index checkpoint.
    server.signal(libc::SIGKILL);
    let _ = server.wait_exit();

    let first = migrate(&data, &url, &prefix, &key);
    assert!(first.contains("counts verified"), "{first}");
    assert!(
        first.contains("40 documents copied, 0 already there"),
        "{first}"
    );
    // Repeated (or resumed after an interruption): nothing is copied twice.
    let again = migrate(&data, &url, &prefix, &key);
    assert!(
        again.contains("0 documents copied, 40 already there"),
        "{again}"
    );
    assert!(
        again.contains("records: 2 in the data directory, 2 in Qdrant"),
        "{again}"
    );

    let embedded = TestServer::start_with(&data, &key_flag);
    let qdrant = TestServer::on(
        &Backend::Qdrant {
            url: url.clone(),
            prefix: prefix.clone(),
        },
        &dir.path().join("q"),
        &key_flag,
    );
    let (ce, cq) = (embedded.channel().await, qdrant.channel().await);
    let get = |ch: Channel| async move {
        CollectionsClient::new(ch)
            .get_collection(proto::GetCollectionRequest { name: "kb".into() })
            .await
            .unwrap()
            .into_inner()
    };
    let (e, q) = (get(ce.clone()).await, get(cq.clone()).await);
    assert_eq!(
        (e.document_count, e.chunk_count, e.settings),
        (q.document_count, q.chunk_count, q.settings)
    );
    assert_eq!(q.document_count, 40);
    // Queries with a word only one document holds (the fixture's notes are
    // alike otherwise, and ties may break differently).
    for query in [
        "specimen 91 measured",
        "survey 2021",
        "measured at 265 units",
    ] {
        // The stored vectors were copied, not re-embedded: dense results
        // are the same list.
        assert_eq!(
            ids(&ce, query, proto::SearchMode::Dense).await,
            ids(&cq, query, proto::SearchMode::Dense).await,
            "{query}"
        );
        for mode in [proto::SearchMode::Keyword, proto::SearchMode::Hybrid] {
            assert_eq!(
                ids(&ce, query, mode).await[0],
                ids(&cq, query, mode).await[0],
                "{query} {mode:?}"
            );
        }
    }
    assert_eq!(questions(&ce).await, questions(&cq).await);
    assert_eq!(questions(&cq).await.len(), 2);
    drop((ce, cq));
    assert!(embedded.stop().success());
    assert!(qdrant.stop().success());
}
