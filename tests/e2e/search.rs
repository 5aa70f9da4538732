//! End to end: Retrieval.Search over documents loaded with Upsert, in each
//! mode, with filters, after deletes, after a restart, and its errors.

use crate::common;

use std::collections::HashMap;

use common::{data_dir, TestServer};
use quarry::proto::{
    self, documents_client::DocumentsClient, metadata_value::Kind,
    retrieval_client::RetrievalClient,
};
use tonic::transport::Channel;
use tonic::Code;

const DOCS: &[(&str, &str, &str)] = &[
    ("paris", "geography", "Paris is the capital and largest city of France, on the Seine."),
    ("berlin", "geography", "Berlin is the capital of Germany and its most populous city."),
    ("rust", "programming", "Rust is a systems programming language focused on memory safety without garbage collection."),
    ("python", "programming", "Python is an interpreted programming language known for readable syntax."),
    ("photosynthesis", "biology", "Photosynthesis converts light energy into chemical energy stored in glucose in plants."),
    ("mitochondria", "biology", "Mitochondria are organelles that produce ATP, the energy currency of the cell."),
    ("volcano", "geology", "A volcano is a rupture in the crust where lava, ash and gases escape."),
    ("tides", "physics", "Ocean tides are caused by the gravitational pull of the moon and the sun."),
];

async fn search(
    client: &mut RetrievalClient<Channel>,
    query: &str,
    mode: proto::SearchMode,
    filter: Option<proto::Filter>,
) -> Result<Vec<proto::Hit>, tonic::Status> {
    client
        .search(proto::SearchRequest {
            collection: "kb".into(),
            query: query.into(),
            top_k: 3,
            mode: mode as i32,
            filter,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().hits)
}

fn topic(t: &str) -> proto::Filter {
    proto::Filter {
        clause: Some(proto::filter::Clause::Equals(proto::FieldEquals {
            key: "topic".into(),
            value: Some(proto::MetadataValue {
                kind: Some(Kind::StringValue(t.into())),
            }),
        })),
    }
}

async fn load(channel: &Channel) {
    common::create_collection(channel, "kb").await;
    let documents = DOCS
        .iter()
        .map(|(id, topic, text)| proto::Document {
            id: (*id).into(),
            title: String::new(),
            text: (*text).into(),
            metadata: HashMap::from([(
                "topic".to_string(),
                proto::MetadataValue {
                    kind: Some(Kind::StringValue((*topic).into())),
                },
            )]),
            ..Default::default()
        })
        .collect();
    DocumentsClient::new(channel.clone())
        .upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents,
        })
        .await
        .unwrap();
}

crate::common::both_backends! {
async fn search_finds_documents_in_every_mode_and_survives_restart(backend) {
    let dir = data_dir();
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    load(&channel).await;
    let mut client = RetrievalClient::new(channel.clone());
    // The collection lives where the backend says: Qdrant reports its
    // shards and replicas, the embedded backend has none.
    let info = quarry::proto::collections_client::CollectionsClient::new(channel.clone())
        .get_collection(proto::GetCollectionRequest { name: "kb".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.placement.is_some(), !backend.is_embedded(), "{info:?}");
    assert_eq!(info.document_count, DOCS.len() as u64);

    for mode in [
        proto::SearchMode::Hybrid,
        proto::SearchMode::Dense,
        proto::SearchMode::Keyword,
    ] {
        let hits = search(&mut client, "What is the capital of France?", mode, None)
            .await
            .unwrap();
        assert_eq!(hits[0].document_id, "paris", "{mode:?}: {hits:?}");
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // Meaning without shared words: only the dense retriever can find it.
    let hits = search(
        &mut client,
        "how do cells make energy",
        proto::SearchMode::Dense,
        None,
    )
    .await
    .unwrap();
    assert_eq!(hits[0].document_id, "mitochondria");
    // Hybrid hits carry both retrievers' ranks and scores.
    let hits = search(
        &mut client,
        "Rust memory safety",
        proto::SearchMode::Hybrid,
        None,
    )
    .await
    .unwrap();
    assert_eq!(hits[0].document_id, "rust");
    assert!(hits[0].dense_rank.is_some() && hits[0].keyword_rank.is_some());
    assert_eq!(
        hits[0].metadata["topic"].kind,
        Some(Kind::StringValue("programming".into()))
    );
    assert!(hits[0].text.contains("memory safety"));

    // Filters apply inside the retrievers.
    let hits = search(
        &mut client,
        "capital city",
        proto::SearchMode::Hybrid,
        Some(topic("biology")),
    )
    .await
    .unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits
        .iter()
        .all(|h| h.document_id == "photosynthesis" || h.document_id == "mitochondria"));

    // Sentence-level rescoring works in every mode, keeps top_k and the
    // score order.
    for mode in [
        proto::SearchMode::Hybrid,
        proto::SearchMode::Dense,
        proto::SearchMode::Keyword,
    ] {
        let hits = client
            .search(proto::SearchRequest {
                collection: "kb".into(),
                query: "What is the capital of France?".into(),
                top_k: 3,
                mode: mode as i32,
                sentence_weight: Some(0.5),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .hits;
        // (Keyword finds only the passages holding a query word.)
        assert!(!hits.is_empty() && hits.len() <= 3, "{mode:?}: {hits:?}");
        assert_eq!(hits[0].document_id, "paris", "{mode:?}: {hits:?}");
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // A deleted document is never returned.
    DocumentsClient::new(channel.clone())
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: "kb".into(),
            ids: vec!["paris".into()],
            filter: None,
        })
        .await
        .unwrap();
    let hits = search(
        &mut client,
        "capital of France",
        proto::SearchMode::Hybrid,
        None,
    )
    .await
    .unwrap();
    assert!(hits.iter().all(|h| h.document_id != "paris"), "{hits:?}");

    drop((client, channel));
    assert!(server.stop().success());
    let server = TestServer::on(&backend, dir.path(), &[]);
    let mut client = RetrievalClient::new(server.channel().await);
    let hits = search(
        &mut client,
        "gravitational pull of the moon",
        proto::SearchMode::Hybrid,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        hits[0].document_id, "tides",
        "indexes are rebuilt from the store on start"
    );
    let hits = search(
        &mut client,
        "capital of France",
        proto::SearchMode::Keyword,
        None,
    )
    .await
    .unwrap();
    assert!(hits.iter().all(|h| h.document_id != "paris"));
    drop(client);
    assert!(server.stop().success());
}
}

crate::common::both_backends! {
/// A collection with int8 vectors answers as the float one does: its
/// candidates are rescored with the floats, so ids and scores agree, and
/// they still do after a restart (the embedded backend's codes then come
/// from the checkpoint).
async fn an_int8_collection_answers_like_a_float_one_across_a_restart(backend) {
    let dir = data_dir();
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    let docs: Vec<(&str, &str)> = DOCS.iter().map(|(id, _, text)| (*id, *text)).collect();
    for (name, quantization) in [("floats", "none"), ("bytes", "int8")] {
        let settings = proto::CollectionSettings {
            quantization: Some(quantization.into()),
            ..Default::default()
        };
        let created = load_with(&channel, name, settings, &docs).await;
        assert_eq!(created.quantization.as_deref(), Some(quantization));
    }
    async fn dense(channel: &Channel, collection: &str, query: &str) -> Vec<(String, f64)> {
        RetrievalClient::new(channel.clone())
            .search(proto::SearchRequest {
                collection: collection.into(),
                query: query.into(),
                top_k: 5,
                mode: proto::SearchMode::Dense as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .hits
            .into_iter()
            .map(|h| (h.document_id, h.score))
            .collect()
    }
    let queries = [
        "What is the capital of France?",
        "how do cells make energy",
        "lava and ash",
        "the pull of the moon",
    ];
    let same = |a: &[(String, f64)], b: &[(String, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 1e-4)
    };
    let mut first = Vec::new();
    for q in queries {
        let floats = dense(&channel, "floats", q).await;
        let bytes = dense(&channel, "bytes", q).await;
        assert_eq!(floats.len(), 5, "{q}");
        assert!(same(&floats, &bytes), "{q}: {floats:?} vs {bytes:?}");
        first.push(bytes);
    }
    drop(channel);
    assert!(server.stop().success());
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    for (q, before) in queries.iter().zip(&first) {
        let after = dense(&channel, "bytes", q).await;
        assert!(same(before, &after), "{q} after a restart: {before:?} vs {after:?}");
    }
    drop(channel);
    assert!(server.stop().success());
}
}

crate::common::both_backends! {
async fn bad_searches_name_the_field(backend) {
    let dir = data_dir();
    let server = TestServer::on(&backend, dir.path(), &[]);
    let channel = server.channel().await;
    load(&channel).await;
    let mut client = RetrievalClient::new(channel.clone());
    let base = proto::SearchRequest {
        collection: "kb".into(),
        query: "capital".into(),
        ..Default::default()
    };
    let cases = [
        (
            proto::SearchRequest {
                query: "  ".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "query: must not be empty or only whitespace",
        ),
        (
            proto::SearchRequest {
                top_k: 1_000_000,
                ..base.clone()
            },
            Code::InvalidArgument,
            "top_k: is 1000000; the limit is 100",
        ),
        (
            proto::SearchRequest {
                sentence_weight: Some(1.5),
                ..base.clone()
            },
            Code::InvalidArgument,
            "sentence_weight: is 1.5; allowed range is 0..=1",
        ),
        (
            proto::SearchRequest {
                sentence_weight: Some(f32::NAN),
                mode: proto::SearchMode::Keyword as i32,
                ..base.clone()
            },
            Code::InvalidArgument,
            "sentence_weight: is NaN; allowed range is 0..=1",
        ),
        (
            proto::SearchRequest {
                mode: 42,
                ..base.clone()
            },
            Code::InvalidArgument,
            "mode: 42 is not a SearchMode",
        ),
        (
            proto::SearchRequest {
                fusion: proto::FusionMethod::Convex as i32,
                alpha: Some(1.5),
                ..base.clone()
            },
            Code::InvalidArgument,
            "alpha: is 1.5; allowed range is 0..=1",
        ),
        (
            proto::SearchRequest {
                filter: Some(proto::Filter::default()),
                ..base.clone()
            },
            Code::InvalidArgument,
            "filter: has no clause set",
        ),
        (
            proto::SearchRequest {
                collection: "nope".into(),
                ..base.clone()
            },
            Code::NotFound,
            "collection \"nope\" does not exist",
        ),
    ];
    for (req, code, message) in cases {
        let status = client.search(req).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(status.message(), message);
    }
    // top_k 0 means the default (10), capped by what exists.
    let hits = client
        .search(proto::SearchRequest { top_k: 0, ..base })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits.len(), DOCS.len());
    drop((client, channel));
    assert!(server.stop().success());
}
}

#[test]
fn the_search_subcommand_prints_hits_and_takes_a_filter() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async { load(&server.channel().await).await });
    let run = |args: &[&str]| {
        std::process::Command::new(common::quarry_bin())
            .args(args)
            .env("QUARRY_ADDR", &server.addr)
            .output()
            .unwrap()
    };
    let out = run(&[
        "search",
        "capital of Germany",
        "--collection",
        "kb",
        "--top-k",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().next().unwrap().contains("berlin"), "{text}");

    let out = run(&[
        "search",
        "energy",
        "-c",
        "kb",
        "--mode",
        "keyword",
        "--json",
        "--filter",
        r#"{"equals":{"key":"topic","value":{"string":"biology"}}}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hits = v["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits
        .iter()
        .all(|h| ["photosynthesis", "mitochondria"].contains(&h["document_id"].as_str().unwrap())));

    let out = run(&["search", "x", "-c", "kb", "--filter", "{\"nope\":1}"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--filter is not a valid filter"));
    assert!(server.stop().success());
}

/// Creates `name` in `language` and loads `docs` (id, text).
async fn load_in(channel: &Channel, name: &str, language: &str, docs: &[(&str, &str)]) {
    let created = load_with(
        channel,
        name,
        proto::CollectionSettings {
            language: Some(language.into()),
            ..Default::default()
        },
        docs,
    )
    .await;
    assert_eq!(created.language.as_deref(), Some(language));
}

/// Creates `name` with `settings` and loads `docs` (id, text); returns
/// the effective settings.
async fn load_with(
    channel: &Channel,
    name: &str,
    settings: proto::CollectionSettings,
    docs: &[(&str, &str)],
) -> proto::CollectionSettings {
    let created = quarry::proto::collections_client::CollectionsClient::new(channel.clone())
        .create_collection(proto::CreateCollectionRequest {
            name: name.into(),
            settings: Some(settings),
            placement: None,
        })
        .await
        .unwrap()
        .into_inner();
    DocumentsClient::new(channel.clone())
        .upsert(proto::UpsertRequest {
            collection: name.into(),
            documents: docs
                .iter()
                .map(|(id, text)| proto::Document {
                    id: (*id).into(),
                    text: (*text).into(),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
    created.settings.unwrap_or_default()
}

/// The ids of a keyword search.
async fn keyword_ids(channel: &Channel, collection: &str, query: &str) -> Vec<String> {
    ids_in_mode(channel, collection, query, proto::SearchMode::Keyword).await
}

async fn ids_in_mode(
    channel: &Channel,
    collection: &str,
    query: &str,
    mode: proto::SearchMode,
) -> Vec<String> {
    RetrievalClient::new(channel.clone())
        .search(proto::SearchRequest {
            collection: collection.into(),
            query: query.into(),
            top_k: 3,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_collection_searches_in_its_language_across_restarts_and_rebuilds() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    load_in(
        &channel,
        "fr",
        "fr",
        &[
            ("maisons", "Les maisons du vieux village sont en pierre."),
            ("rivière", "La rivière traverse la vallée au printemps."),
        ],
    )
    .await;
    load_in(
        &channel,
        "ar",
        "ar",
        &[
            ("maktabat", "زرنا المكتبات الكبيرة في المدينة."),
            ("bahr", "البحر هادئ في الصيف."),
            ("qitar", "وصل القطار إلى المحطة متأخرا."),
            ("shams", "تشرق الشمس فوق الجبال كل صباح."),
            ("tabib", "ذهب الطبيب إلى المستشفى ليلا."),
            ("hadiqa", "الأطفال يلعبون في الحديقة العامة."),
        ],
    )
    .await;
    load_in(
        &channel,
        "ja",
        "cjk",
        &[
            ("tokyo", "東京都の人口は約1400万人です。"),
            ("osaka", "大阪は食べ物で有名な都市です。"),
        ],
    )
    .await;
    // English stemming would not match these forms; each language's does.
    let checks = [
        ("fr", "maison", "maisons"),
        ("ar", "مكتبة", "maktabat"),
        ("ja", "東京の人口", "tokyo"),
    ];
    for (collection, query, want) in checks {
        let ids = keyword_ids(&channel, collection, query).await;
        assert_eq!(
            ids.first().map(String::as_str),
            Some(want),
            "{collection}: {ids:?}"
        );
    }
    // The English embedder barely reads Arabic, so the default hybrid
    // fusion leans on the keyword list: its best hit is keyword's.
    for (query, want) in [
        ("مكتبة", "maktabat"),
        ("القطار والمحطة", "qitar"),
        ("الشمس", "shams"),
        ("المستشفى", "tabib"),
        ("الحديقة", "hadiqa"),
    ] {
        let keyword = keyword_ids(&channel, "ar", query).await;
        let hybrid = ids_in_mode(&channel, "ar", query, proto::SearchMode::Hybrid).await;
        assert_eq!(keyword.first().map(String::as_str), Some(want), "{query}");
        assert_eq!(hybrid.first(), keyword.first(), "{query}: {hybrid:?}");
    }
    drop(channel);
    assert!(server.stop().success());

    // A restart keeps each language; so does a rebuild of the keyword
    // index from the store.
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    for (collection, query, want) in checks {
        let ids = keyword_ids(&channel, collection, query).await;
        assert_eq!(
            ids.first().map(String::as_str),
            Some(want),
            "{collection}: {ids:?}"
        );
    }
    drop(channel);
    assert!(server.stop().success());
    for entry in std::fs::read_dir(dir.path().join("indexes")).unwrap() {
        let keyword = entry.unwrap().path().join("keyword");
        if keyword.exists() {
            std::fs::remove_dir_all(keyword).unwrap();
        }
    }
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    for (collection, query, want) in checks {
        let ids = keyword_ids(&channel, collection, query).await;
        assert_eq!(
            ids.first().map(String::as_str),
            Some(want),
            "{collection}: {ids:?}"
        );
    }
    let fr = common::collection(&channel, "fr").await;
    assert_eq!(fr.settings.unwrap().language.as_deref(), Some("fr"));
    assert_eq!(fr.keyword_indexed_chunks, 2);
    drop(channel);
    assert!(server.stop().success());
}
