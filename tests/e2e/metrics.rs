//! End to end: `/metrics` on its own port shows the calls a client made
//! (by method and code, with latency histograms), the documents loaded,
//! collection sizes, model state and generation counters.

use crate::common;

use std::io::{Read, Write};

use common::{data_dir, TestServer};
use quarry::proto::{
    self, collections_client::CollectionsClient, documents_client::DocumentsClient,
    rag_client::RagClient, retrieval_client::RetrievalClient,
};

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out
}

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_clients_did() {
    let dir = data_dir();
    let mut server = TestServer::start_with(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = server
        .metrics_addr
        .clone()
        .expect("metrics address printed");
    let channel = server.channel().await;
    let mut col = CollectionsClient::new(channel.clone());
    col.create_collection(proto::CreateCollectionRequest {
        name: "kb".into(),
        settings: None,
        placement: None,
    })
    .await
    .unwrap();
    assert!(col
        .get_collection(proto::GetCollectionRequest {
            name: "missing".into()
        })
        .await
        .is_err());
    let docs = ["Tulips flower in spring.", "Roses need sun."]
        .iter()
        .enumerate()
        .map(|(i, t)| proto::Document {
            id: format!("d{i}"),
            text: (*t).into(),
            ..Default::default()
        })
        .collect();
    DocumentsClient::new(channel.clone())
        .upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: docs,
        })
        .await
        .unwrap();
    let mut ret = RetrievalClient::new(channel.clone());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = ret
            .search(proto::SearchRequest {
                collection: "kb".into(),
                query: "flowers".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        // Every call has its own request id.
        let id = reply
            .metadata()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!ids.contains(&id));
        ids.push(id);
    }
    let mut stream = RagClient::new(channel.clone())
        .ask(proto::AskRequest {
            collection: "kb".into(),
            question: "When do tulips flower?".into(),
            generation: Some(proto::GenerationParams {
                max_new_tokens: Some(8),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}

    let text = tokio::task::spawn_blocking(move || scrape(&metrics))
        .await
        .unwrap();
    let req = "quarry_requests_total";
    assert_eq!(
        sample(&text, req, &["method=\"Retrieval.Search\"", "code=\"Ok\""]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            req,
            &["method=\"Collections.GetCollection\"", "code=\"NotFound\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, req, &["method=\"Rag.Ask\"", "code=\"Ok\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "quarry_request_duration_seconds_count",
            &["method=\"Retrieval.Search\""]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "quarry_ingest_documents_total",
            &["outcome=\"added\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "quarry_ingest_chunks_embedded_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "quarry_collection_size",
            &["collection=\"kb\"", "unit=\"documents\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "quarry_model_loaded", &["kind=\"generator\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "quarry_model_loaded", &["kind=\"embedder\""]),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "quarry_model_work_total",
            &["what=\"tokens_generated\""]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&text, "quarry_queue_waiting", &["queue=\"generate\""]),
        Some(0.0)
    );
    // A refused call is logged with its method, code and request id.
    let logs = server.logs();
    assert!(
        logs.lines().any(|l| l.contains("call refused")
            && l.contains("Collections.GetCollection")
            && l.contains("request_id")
            && l.contains("NotFound")),
        "{logs}"
    );
    drop(channel);
    assert!(server.stop().success());
}
