//! End to end: Documents.Upsert, GetDocument and DeleteDocuments against
//! the real server: chunking, de-duplication by content hash, replacement,
//! deletion by id and by filter, every error code, and persistence.

use crate::common;

use std::collections::HashMap;

use common::{data_dir, TestServer};
use quarry::proto::{
    self, collections_client::CollectionsClient, documents_client::DocumentsClient,
    metadata_value::Kind,
};
use tonic::transport::Channel;
use tonic::Code;

fn meta(pairs: &[(&str, Kind)]) -> HashMap<String, proto::MetadataValue> {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                proto::MetadataValue {
                    kind: Some(v.clone()),
                },
            )
        })
        .collect()
}

fn doc(id: &str, text: &str, year: i64) -> proto::Document {
    proto::Document {
        id: id.into(),
        title: format!("Title of {id}"),
        text: text.into(),
        metadata: meta(&[
            ("year", Kind::IntValue(year)),
            (
                "tags",
                Kind::StringList(proto::StringList {
                    values: vec!["a".into(), id.into()],
                }),
            ),
        ]),
        ..Default::default()
    }
}

async fn upsert(
    client: &mut DocumentsClient<Channel>,
    docs: Vec<proto::Document>,
) -> Result<proto::UpsertResponse, tonic::Status> {
    client
        .upsert(proto::UpsertRequest {
            collection: "docs".into(),
            documents: docs,
        })
        .await
        .map(|r| r.into_inner())
}

async fn counts(channel: &Channel) -> (u64, u64) {
    let c = CollectionsClient::new(channel.clone())
        .get_collection(proto::GetCollectionRequest {
            name: "docs".into(),
        })
        .await
        .unwrap()
        .into_inner();
    (c.document_count, c.chunk_count)
}

fn long_text() -> String {
    (0..12)
        .map(|p| format!("Paragraph {p} talks about hybrid retrieval, vector indexes and keyword search. It has two sentences of its own."))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_chunked_stored_replaced_and_deleted() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    CollectionsClient::new(channel.clone())
        .create_collection(proto::CreateCollectionRequest {
            name: "docs".into(),
            settings: Some(proto::CollectionSettings {
                chunk_size: Some(32),
                chunk_overlap: Some(4),
                ..Default::default()
            }),
            placement: None,
        })
        .await
        .unwrap();
    let mut client = DocumentsClient::new(channel.clone());

    let first = upsert(
        &mut client,
        vec![
            doc("d1", "The capital of France is Paris.", 2001),
            doc("d2", &long_text(), 2010),
            doc("d3", "Rust is a systems programming language.", 2020),
        ],
    )
    .await
    .unwrap();
    assert_eq!((first.added, first.updated, first.unchanged), (3, 0, 0));
    assert!(
        first.chunks_written >= 6,
        "the long text must be cut into several 32-token chunks: {first:?}"
    );
    assert_eq!(counts(&channel).await, (3, first.chunks_written));

    let d2 = client
        .get_document(proto::GetDocumentRequest {
            collection: "docs".into(),
            id: "d2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d2.text, long_text());
    assert_eq!(d2.title, "Title of d2");
    assert_eq!(d2.metadata, doc("d2", "", 2010).metadata);
    assert!(d2.chunk_count >= 4);
    assert_eq!(d2.content_hash.len(), 64);

    // The same content again: nothing changes, nothing is embedded.
    let again = upsert(
        &mut client,
        vec![doc("d1", "The capital of France is Paris.", 2001)],
    )
    .await
    .unwrap();
    assert_eq!(
        (
            again.added,
            again.updated,
            again.unchanged,
            again.chunks_written
        ),
        (0, 0, 1, 0)
    );
    // CRLF and LF are the same text.
    let lf = upsert(&mut client, vec![doc("d4", "line one\nline two", 2005)])
        .await
        .unwrap();
    assert_eq!(lf.added, 1);
    let crlf = upsert(&mut client, vec![doc("d4", "line one\r\nline two", 2005)])
        .await
        .unwrap();
    assert_eq!(crlf.unchanged, 1);
    let removed = client
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: "docs".into(),
            ids: vec!["d4".into()],
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.documents_deleted, 1);

    // Changed content replaces the document's chunks.
    let changed = upsert(&mut client, vec![doc("d2", "A short replacement.", 2010)])
        .await
        .unwrap();
    assert_eq!((changed.updated, changed.chunks_written), (1, 1));
    assert_eq!(counts(&channel).await, (3, 3));

    // Delete by filter: year >= 2015 matches d3 only.
    let by_filter = client
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: "docs".into(),
            ids: vec![],
            filter: Some(proto::Filter {
                clause: Some(proto::filter::Clause::Range(proto::FieldRange {
                    key: "year".into(),
                    gte: Some(2015.0),
                    ..Default::default()
                })),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (by_filter.documents_deleted, by_filter.chunks_deleted),
        (1, 1)
    );
    let by_id = client
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: "docs".into(),
            ids: vec!["d1".into(), "nope".into()],
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.documents_deleted, 1);
    assert_eq!(counts(&channel).await, (1, 1));

    drop((client, channel));
    assert!(server.stop().success());
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    assert_eq!(counts(&channel).await, (1, 1));
    let d2 = DocumentsClient::new(channel.clone())
        .get_document(proto::GetDocumentRequest {
            collection: "docs".into(),
            id: "d2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d2.text, "A short replacement.");
    drop(channel);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_are_refused_and_change_nothing() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    common::create_collection(&channel, "docs").await;
    let mut client = DocumentsClient::new(channel.clone());
    upsert(&mut client, vec![doc("keep", "This document stays.", 1999)])
        .await
        .unwrap();
    let before = counts(&channel).await;

    let mut nan = doc("x", "text", 1);
    nan.metadata.insert(
        "score".into(),
        proto::MetadataValue {
            kind: Some(Kind::DoubleValue(f64::NAN)),
        },
    );
    let mut unset = doc("x", "text", 1);
    unset
        .metadata
        .insert("empty".into(), proto::MetadataValue { kind: None });
    let cases: Vec<(Vec<proto::Document>, &str)> = vec![
        (vec![], "documents: at least one document is required"),
        (
            vec![doc("", "text", 1)],
            "documents[0].id: must not be empty",
        ),
        (
            vec![doc("ok", "   \n\t ", 1)],
            "documents[0].text: must not be empty or only whitespace",
        ),
        (
            vec![doc("a", "one", 1), doc("a", "two", 1)],
            "documents[1].id",
        ),
        (
            vec![doc(&"i".repeat(513), "text", 1)],
            "documents[0].id: is 513 bytes; the limit is 512 bytes",
        ),
        (
            vec![doc("nul\0id", "text", 1)],
            "documents[0].id: must not contain control characters",
        ),
        (
            vec![nan],
            "documents[0].metadata[\"score\"]: must be a finite number",
        ),
        (
            vec![unset],
            "documents[0].metadata[\"empty\"]: has no value set",
        ),
    ];
    for (docs, message) in cases {
        let status = upsert(&mut client, docs).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(message),
            "{:?} should start with {message:?}",
            status.message()
        );
    }
    let status = client
        .upsert(proto::UpsertRequest {
            collection: "missing".into(),
            documents: vec![doc("x", "t", 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .upsert(proto::UpsertRequest {
            collection: "bad name".into(),
            documents: vec![doc("x", "t", 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("collection:"),
        "{}",
        status.message()
    );
    let status = client
        .get_document(proto::GetDocumentRequest {
            collection: "docs".into(),
            id: "absent".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    for (ids, filter, message) in [
        (vec![], None, "ids: set ids or filter"),
        (
            vec!["keep".to_string()],
            Some(proto::Filter::default()),
            "ids: set either ids or filter, not both",
        ),
        (
            vec![],
            Some(proto::Filter::default()),
            "filter: has no clause set",
        ),
    ] {
        let status = client
            .delete_documents(proto::DeleteDocumentsRequest {
                collection: "docs".into(),
                ids,
                filter,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), message);
    }
    assert_eq!(
        counts(&channel).await,
        before,
        "failed calls must leave the store as it was"
    );
    drop((client, channel));
    assert!(server.stop().success());
}
