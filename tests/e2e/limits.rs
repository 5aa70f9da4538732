//! End to end: every configurable request limit, set low, is hit once and
//! answers its code with a message naming the field and the limit.

use crate::common;

use common::{data_dir, TestServer};
use quarry::proto::{
    self, documents_client::DocumentsClient, rag_client::RagClient,
    retrieval_client::RetrievalClient,
};
use tonic::Code;

fn doc(id: &str, text: String) -> proto::Document {
    proto::Document {
        id: id.into(),
        text,
        ..Default::default()
    }
}

fn assert_refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, words: &[&str]) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), code, "{}", e.message());
    for w in words {
        assert!(e.message().contains(w), "{w:?} in {:?}", e.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_answers_its_code() {
    let dir = data_dir();
    let server = TestServer::start_with(
        dir.path(),
        &[
            "--max-documents-per-request",
            "2",
            "--max-document-bytes",
            "2048",
            "--max-top-k",
            "5",
            "--max-question-bytes",
            "64",
            "--max-new-tokens",
            "16",
            "--generate-queue-capacity",
            "1",
        ],
    );
    let channel = server.channel().await;
    common::create_collection(&channel, "kb").await;
    let mut docs = DocumentsClient::new(channel.clone());
    let short = |i: usize| {
        doc(
            &format!("d{i}"),
            format!("Tulips flower in spring, note {i}."),
        )
    };
    assert_refused(
        docs.upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: (0..3).map(short).collect(),
        })
        .await,
        Code::InvalidArgument,
        &["documents", "3", "2"],
    );
    assert_refused(
        docs.upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: vec![doc("big", "x".repeat(3000))],
        })
        .await,
        Code::InvalidArgument,
        &["text", "2048"],
    );
    docs.upsert(proto::UpsertRequest {
        collection: "kb".into(),
        documents: (0..2).map(short).collect(),
    })
    .await
    .unwrap();

    let mut ret = RetrievalClient::new(channel.clone());
    let search = |query: String, top_k: u32| proto::SearchRequest {
        collection: "kb".into(),
        query,
        top_k,
        ..Default::default()
    };
    assert_refused(
        ret.search(search("tulips".into(), 6)).await,
        Code::InvalidArgument,
        &["top_k", "5"],
    );
    assert_refused(
        ret.search(search("t".repeat(65), 1)).await,
        Code::InvalidArgument,
        &["query", "64"],
    );

    let ask = |question: String, max_new_tokens: u32| proto::AskRequest {
        collection: "kb".into(),
        question,
        generation: Some(proto::GenerationParams {
            max_new_tokens: Some(max_new_tokens),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut rag = RagClient::new(channel.clone());
    assert_refused(
        rag.ask(ask("q".repeat(65), 8)).await,
        Code::InvalidArgument,
        &["question", "64"],
    );
    assert_refused(
        rag.ask(ask("When do tulips flower?".into(), 17)).await,
        Code::InvalidArgument,
        &["max_new_tokens", "16"],
    );

    // One generation running and one waiting fill a queue of 1: more are
    // refused at once, naming the queue.
    let mut open = Vec::new();
    let mut full = None;
    for _ in 0..6 {
        match rag.ask(ask("When do tulips flower?".into(), 16)).await {
            Ok(stream) => open.push(stream.into_inner()),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let full = full.expect("the generation queue filled");
    assert_eq!(full.code(), Code::ResourceExhausted, "{}", full.message());
    assert!(
        full.message().contains("queue") && full.message().contains('1'),
        "{}",
        full.message()
    );
    for mut s in open {
        while s.message().await.unwrap().is_some() {}
    }
    drop((docs, ret, rag, channel));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_with_both_sizes() {
    let dir = data_dir();
    let server = TestServer::start_with(dir.path(), &["--max-message-bytes", "65536"]);
    let channel = server.channel().await;
    common::create_collection(&channel, "kb").await;
    let err = DocumentsClient::new(channel.clone())
        .upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: vec![doc("big", "y".repeat(100_000))],
        })
        .await
        .unwrap_err();
    // tonic refuses it while decoding, before any handler runs; the
    // server answers RESOURCE_EXHAUSTED with both sizes.
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("65536") && err.message().contains("100017"),
        "{}",
        err.message()
    );

    // A unary call past its deadline stops and says so.
    let mut req = tonic::Request::new(proto::EmbedRequest {
        texts: (0..64)
            .map(|i| format!("a sentence to embed, number {i}"))
            .collect(),
    });
    req.set_timeout(std::time::Duration::from_millis(1));
    let late = RetrievalClient::new(channel.clone()).embed(req).await;
    // The server drops the handler at the deadline and answers
    // DEADLINE_EXCEEDED (a 64-text Embed takes longer than 1 ms here);
    // tonic's client runs its own timer too and may report CANCELLED
    // "Timeout expired" first. (src/grpc's unit test pins the server's.)
    let late = late.expect_err("past its deadline");
    match late.code() {
        Code::DeadlineExceeded => {
            assert!(
                late.message().contains("deadline (1 ms)"),
                "{}",
                late.message()
            )
        }
        Code::Cancelled => assert!(late.message().contains("Timeout"), "{}", late.message()),
        other => panic!("{other:?}: {}", late.message()),
    }
    drop(channel);
    assert!(server.stop().success());
}
