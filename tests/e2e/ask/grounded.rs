//! Grounded answers end to end, with the real default models: each answer
//! mode on the fixture corpus, fabricated numbers never shown in grounded
//! mode, the verification kept in records and found by History filters,
//! extractive answers from a server without a generator, and a grounded
//! answer whose client leaves.

use std::collections::HashMap;
use std::time::Duration;

use quarry::proto::{self, documents_client::DocumentsClient, history_client::HistoryClient};
use quarry_ground::FactSet;
use tonic::transport::Channel;

use super::common::{data_dir, TestServer};
use super::{ask, ask_request, list, load, normalised, Answer, COLLECTION};

fn in_mode(question: &str, mode: proto::AnswerMode) -> proto::AskRequest {
    proto::AskRequest {
        answer_mode: mode as i32,
        ..ask_request(question, "", 96)
    }
}

fn finish(a: &Answer) -> proto::FinishReason {
    proto::FinishReason::try_from(a.done.finish_reason).unwrap()
}

/// The full text (title and text) of every fixture document, by id.
async fn documents(channel: &Channel) -> HashMap<String, String> {
    let mut docs = DocumentsClient::new(channel.clone());
    let mut out = HashMap::new();
    for line in include_str!("../../fixtures/ask_corpus.jsonl").lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        let d = docs
            .get_document(proto::GetDocumentRequest {
                collection: COLLECTION.into(),
                id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        out.insert(id, format!("{}\n{}", d.title, d.text));
    }
    out
}

/// Checks what every grounded or extractive answer promises: each delta is
/// one sentence with its citations and support, each cited number is a
/// given passage, and every number and name shown is in the passage the
/// sentence cites.
fn assert_grounded(a: &Answer, docs: &HashMap<String, String>) {
    if matches!(
        finish(a),
        proto::FinishReason::NotSupported | proto::FinishReason::NoContext
    ) {
        assert_eq!(a.text, quarry_engine::NOT_FOUND_ANSWER);
        return;
    }
    assert!(!a.deltas.is_empty());
    for d in &a.deltas {
        assert!(
            !d.citations.is_empty(),
            "a sentence shown without a citation: {d:?}"
        );
        assert!(d.support.is_some(), "{d:?}");
        let cited: Vec<&str> = d
            .citations
            .iter()
            .map(|n| {
                let c = a
                    .citations
                    .iter()
                    .find(|c| c.number == *n)
                    .unwrap_or_else(|| panic!("[{n}] names no given passage: {d:?}"));
                docs[&c.document_id].as_str()
            })
            .collect();
        let facts = FactSet::from_texts(cited);
        let missing = facts.missing(&d.text);
        assert!(
            missing.is_empty(),
            "{:?} shows {missing:?}, which its cited passages do not hold",
            d.text
        );
    }
}

crate::common::both_backends! {
async fn each_answer_mode_answers_from_the_passages(backend) {
    let dir = data_dir();
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    load(&channel).await;
    let docs = documents(&channel).await;

    let q = "How deep is the main shaft of the Tollen Copper Mine?";
    // Extractive: the evidence sentence quoted, no model.
    let a = ask(&channel, in_mode(q, proto::AnswerMode::Extractive))
        .await
        .unwrap();
    assert_eq!(finish(&a), proto::FinishReason::Stop);
    assert_eq!(a.done.answer_mode, proto::AnswerMode::Extractive as i32);
    assert!(a.text.starts_with('“'), "{}", a.text);
    assert!(normalised(&a.text).contains("640"), "{}", a.text);
    assert_eq!(a.done.used_citations[0].document_id, "tollen-mine");
    assert_eq!((a.done.prompt_tokens, a.done.answer_tokens), (0, 0));
    assert!(a.done.model.is_empty());
    assert_eq!(a.done.supported_share, None);
    assert!(a
        .checks
        .iter()
        .all(|c| c.status == proto::SentenceStatus::Quoted as i32));
    assert_grounded(&a, &docs);

    // Grounded: the model's verified sentences, each with its citation.
    let a = ask(&channel, in_mode(q, proto::AnswerMode::Grounded))
        .await
        .unwrap();
    eprintln!("grounded: {:?} {:?}", a.text, a.checks);
    assert_eq!(a.done.answer_mode, proto::AnswerMode::Grounded as i32);
    assert!(matches!(
        finish(&a),
        proto::FinishReason::Stop | proto::FinishReason::Length
    ));
    assert!(normalised(&a.text).contains("640"), "{}", a.text);
    assert!(a.done.answer_tokens > 0);
    assert!(a.done.supported_share.is_some());
    assert!(a
        .done
        .used_citations
        .iter()
        .any(|c| c.document_id == "tollen-mine"));
    assert_grounded(&a, &docs);
    // Every shown sentence has its check, right after it.
    let shown: Vec<&proto::SentenceCheck> =
        a.checks.iter().filter(|c| !c.shown.is_empty()).collect();
    assert_eq!(shown.len(), a.deltas.len());
    for (d, c) in a.deltas.iter().zip(&shown) {
        assert_eq!(d.text.trim(), c.shown);
        assert_eq!(d.citations, c.citations);
    }

    // Generative: the model's text as written, annotated sentence by
    // sentence.
    let a = ask(&channel, in_mode(q, proto::AnswerMode::Generative))
        .await
        .unwrap();
    eprintln!("generative: {:?} {:?}", a.text, a.checks);
    assert_eq!(a.done.answer_mode, proto::AnswerMode::Generative as i32);
    assert!(a
        .deltas
        .iter()
        .all(|d| d.citations.is_empty() && d.support.is_none()));
    assert!(!a.checks.is_empty());
    for c in &a.checks {
        assert_eq!(c.generated, c.shown, "nothing is replaced");
        assert!(
            c.status == proto::SentenceStatus::Supported as i32
                || c.status == proto::SentenceStatus::Unsupported as i32
        );
        assert!(a.text.contains(c.generated.trim()));
    }
    let record = HistoryClient::new(channel.clone())
        .get_record(proto::GetRecordRequest {
            id: a.done.record_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.answer, a.text);
    assert_eq!(record.generated_answer, a.text);
    assert_eq!(record.sentences.len(), a.checks.len());
    assert!(server.stop().success());
}
}

crate::common::both_backends! {
async fn fabricated_numbers_are_never_shown_and_refusals_are_recorded(backend) {
    let dir = data_dir();
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    load(&channel).await;
    let docs = documents(&channel).await;

    // The passages on these subjects hold no such figure: the small model
    // will happily invent one, and grounded mode must never show it.
    let mut refused = Vec::new();
    for q in [
        "How many visitors came to the Greyhaven Lighthouse in 2019?",
        "What does a ticket for the Serrano Glass Bridge cost?",
        "How many puffins live on Marrow Island?",
        "What was the Tollen Copper Mine's yearly copper output in tonnes?",
    ] {
        let a = ask(&channel, in_mode(q, proto::AnswerMode::Grounded))
            .await
            .unwrap();
        eprintln!("{q} -> {:?} ({:?})", a.text, finish(&a));
        for c in &a.checks {
            eprintln!("    {c:?}");
        }
        assert_grounded(&a, &docs);
        if finish(&a) == proto::FinishReason::NotSupported {
            refused.push(a.done.record_id.clone());
        }
    }
    // A question the passages cannot answer at all: refused without the
    // model, as not supported.
    let a = ask(
        &channel,
        in_mode(
            "Who was the architect of the Greyhaven Lighthouse?",
            proto::AnswerMode::Extractive,
        ),
    )
    .await
    .unwrap();
    eprintln!("architect -> {:?} ({:?})", a.text, finish(&a));
    let extractive = ask(
        &channel,
        in_mode(
            "Who built the oven of the Mill Street Bakery?",
            proto::AnswerMode::Extractive,
        ),
    )
    .await
    .unwrap();
    assert!(
        normalised(&extractive.text).contains("kessler"),
        "{}",
        extractive.text
    );
    if finish(&a) == proto::FinishReason::NotSupported {
        refused.push(a.done.record_id.clone());
    }
    assert!(
        !refused.is_empty(),
        "no question was refused as not supported"
    );

    // The History filters find the answers that went wrong, and only them.
    let mut history = HistoryClient::new(channel.clone());
    let flagged = list(
        &mut history,
        proto::RecordFilter {
            unsupported: Some(true),
            ..Default::default()
        },
        100,
        "",
    )
    .await
    .unwrap();
    let flagged_ids: Vec<&str> = flagged.records.iter().map(|r| r.id.as_str()).collect();
    for id in &refused {
        assert!(flagged_ids.contains(&id.as_str()), "{id} not flagged");
    }
    assert!(!flagged_ids.contains(&extractive.done.record_id.as_str()));
    for r in &flagged.records {
        assert!(
            r.finish_reason == proto::FinishReason::NotSupported as i32
                || r.sentences.iter().any(|c| {
                    c.status == proto::SentenceStatus::Replaced as i32
                        || c.status == proto::SentenceStatus::Dropped as i32
                }),
            "{r:?}"
        );
    }
    let clean = list(
        &mut history,
        proto::RecordFilter {
            unsupported: Some(false),
            answer_mode: proto::AnswerMode::Extractive as i32,
            ..Default::default()
        },
        100,
        "",
    )
    .await
    .unwrap();
    assert!(clean
        .records
        .iter()
        .any(|r| r.id == extractive.done.record_id));
    let not_supported = list(
        &mut history,
        proto::RecordFilter {
            finish_reason: proto::FinishReason::NotSupported as i32,
            ..Default::default()
        },
        100,
        "",
    )
    .await
    .unwrap();
    assert_eq!(not_supported.records.len(), refused.len());

    // The record keeps the evidence and every sentence's verification.
    let record = history
        .get_record(proto::GetRecordRequest {
            id: extractive.done.record_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.answer_mode, proto::AnswerMode::Extractive as i32);
    assert!(!record.evidence.is_empty());
    assert!(
        record.evidence[0].text.contains("Otto Kessler"),
        "{:?}",
        record.evidence
    );
    assert_eq!(record.sentences.len(), extractive.checks.len());
    assert_eq!(
        record.sentences[0].passage,
        record.sentences[0].citations[0]
    );

    // A filter value that is no answer mode is refused, naming the field.
    let err = list(
        &mut history,
        proto::RecordFilter {
            answer_mode: 42,
            ..Default::default()
        },
        10,
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("filter.answer_mode"),
        "{}",
        err.message()
    );
    assert!(server.stop().success());
}
}

crate::common::both_backends! {
async fn extractive_answers_need_no_generator_and_grounded_ones_cancel(backend) {
    let dir = data_dir();
    let server = TestServer::on(&backend, dir.path(), &["--generate-model", "none"]);
    let channel = server.channel().await;
    load(&channel).await;
    let a = ask(
        &channel,
        in_mode(
            "At what altitude is the Karsten Observatory?",
            proto::AnswerMode::Extractive,
        ),
    )
    .await
    .unwrap();
    assert!(normalised(&a.text).contains("2850"), "{}", a.text);
    let err = ask(
        &channel,
        in_mode(
            "At what altitude is the Karsten Observatory?",
            proto::AnswerMode::Grounded,
        ),
    )
    .await
    .err()
    .expect("grounded needs a model");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("extractive"), "{}", err.message());
    assert!(server.stop().success());

    // A client that leaves a grounded answer before its first sentence: the
    // generation stops and the record says cancelled.
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    let mut stream = quarry::proto::rag_client::RagClient::new(channel.clone())
        .ask(proto::AskRequest {
            answer_mode: proto::AnswerMode::Grounded as i32,
            ..ask_request(
                "Describe the Greyhaven Lighthouse, its lamp and its last keeper.",
                "",
                1000,
            )
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        first.event,
        Some(proto::ask_event::Event::Citations(_))
    ));
    drop(stream);
    let mut history = HistoryClient::new(channel.clone());
    let mut record = None;
    for _ in 0..200 {
        let newest = list(&mut history, Default::default(), 1, "").await.unwrap();
        if let Some(r) = newest
            .records
            .into_iter()
            .find(|r| r.question.starts_with("Describe the Greyhaven"))
        {
            record = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = record.expect("the cancelled ask is recorded");
    assert_eq!(record.finish_reason, proto::FinishReason::Cancelled as i32);
    assert!(record.answer_tokens < 1000);
    assert!(server.stop().success());
}
}
