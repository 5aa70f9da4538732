//! End to end: API keys and roles. Keys made with `quarry keys create`;
//! a server with --keys-file; every method called with each role's key
//! (a table of expected codes), with no key and with an unknown key;
//! a collection allow-list; own-history rules; health and reflection
//! open; the keys never in the server's logs; a server without keys and
//! without --no-auth refuses to start.

use crate::common;

use std::process::Command;

use common::{create_key, data_dir, quarry_bin, TestServer};
use quarry::proto::{
    self, collections_client::CollectionsClient, documents_client::DocumentsClient,
    history_client::HistoryClient, rag_client::RagClient, retrieval_client::RetrievalClient,
};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Sends a key (or nothing) with every call.
#[derive(Clone)]
struct Key(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Key {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Authed = InterceptedService<Channel, Key>;

fn with_key(channel: &Channel, key: Option<&str>) -> Authed {
    InterceptedService::new(
        channel.clone(),
        Key(key.map(|k| format!("Bearer {k}").parse().unwrap())),
    )
}

fn code<T>(r: Result<T, Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn doc(id: &str) -> proto::Document {
    proto::Document {
        id: id.into(),
        title: "Tulips".into(),
        text: "Tulips are planted in autumn and flower in spring.".into(),
        ..Default::default()
    }
}

/// Every method with `ch`: (method, code).
async fn calls(ch: &Authed, tag: &str) -> Vec<(&'static str, Code)> {
    let mut out = Vec::new();
    let mut col = CollectionsClient::new(ch.clone());
    let mut docs = DocumentsClient::new(ch.clone());
    let mut ret = RetrievalClient::new(ch.clone());
    let mut rag = RagClient::new(ch.clone());
    let mut his = HistoryClient::new(ch.clone());
    let tmp = format!("tmp-{tag}");
    out.push((
        "CreateCollection",
        code(
            col.create_collection(proto::CreateCollectionRequest {
                name: tmp.clone(),
                settings: None,
                placement: None,
            })
            .await,
        ),
    ));
    out.push((
        "GetCollection",
        code(
            col.get_collection(proto::GetCollectionRequest {
                name: "docs".into(),
            })
            .await,
        ),
    ));
    out.push((
        "ListCollections",
        code(col.list_collections(proto::ListCollectionsRequest {}).await),
    ));
    out.push((
        "DeleteCollection",
        code(
            col.delete_collection(proto::DeleteCollectionRequest { name: tmp })
                .await,
        ),
    ));
    out.push((
        "Upsert",
        code(
            docs.upsert(proto::UpsertRequest {
                collection: "docs".into(),
                documents: vec![doc(&format!("u-{tag}"))],
            })
            .await,
        ),
    ));
    out.push((
        "BulkIngest",
        code(
            docs.bulk_ingest(tokio_stream::iter(vec![proto::BulkIngestRequest {
                collection: "docs".into(),
                documents: vec![doc(&format!("b-{tag}"))],
            }]))
            .await,
        ),
    ));
    out.push((
        "GetDocument",
        code(
            docs.get_document(proto::GetDocumentRequest {
                collection: "docs".into(),
                id: "seed".into(),
            })
            .await,
        ),
    ));
    out.push((
        "DeleteDocuments",
        code(
            docs.delete_documents(proto::DeleteDocumentsRequest {
                collection: "docs".into(),
                ids: vec![format!("none-{tag}")],
                ..Default::default()
            })
            .await,
        ),
    ));
    out.push((
        "Search",
        code(
            ret.search(proto::SearchRequest {
                collection: "docs".into(),
                query: "tulips".into(),
                ..Default::default()
            })
            .await,
        ),
    ));
    out.push((
        "Embed",
        code(
            ret.embed(proto::EmbedRequest {
                texts: vec!["hi".into()],
            })
            .await,
        ),
    ));
    let ask = rag
        .ask(proto::AskRequest {
            collection: "docs".into(),
            question: "Which team won the 1998 football World Cup?".into(),
            ..Default::default()
        })
        .await;
    let ask = match ask {
        Ok(stream) => {
            let mut s = stream.into_inner();
            let mut last = Ok(());
            loop {
                match s.message().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        last = Err(e);
                        break;
                    }
                }
            }
            last
        }
        Err(e) => Err(e),
    };
    out.push(("Ask", code(ask)));
    out.push((
        "ListRecords",
        code(his.list_records(proto::ListRecordsRequest::default()).await),
    ));
    out.push((
        "ExportRecords",
        code(
            his.export_records(proto::ExportRecordsRequest { filter: None })
                .await,
        ),
    ));
    out.push((
        "DeleteRecords",
        code(
            his.delete_records(proto::DeleteRecordsRequest {
                ids: vec!["00000000000fffff".into()],
                session_id: String::new(),
            })
            .await,
        ),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_methods() {
    let dir = data_dir();
    let keys_file = dir.path().join("keys.toml");
    let admin = create_key(&keys_file, "boss", "admin", &[]);
    let writer = create_key(&keys_file, "loader", "writer", &[]);
    let reader = create_key(&keys_file, "analyst", "reader", &[]);
    let scoped = create_key(&keys_file, "guest", "reader", &["--collections", "other"]);
    let text = std::fs::read_to_string(&keys_file).unwrap();
    for key in [&admin, &writer, &reader, &scoped] {
        assert!(key.starts_with("qk_") && !text.contains(key.as_str()));
    }
    // No keys file, no --no-auth: the server does not start.
    let refused = Command::new(quarry_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("unused"))
        .env_remove("QUARRY_KEYS_FILE")
        .env_remove("QUARRY_NO_AUTH")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--keys-file"));

    let mut server = TestServer::start_with(
        &dir.path().join("data"),
        &["--keys-file", keys_file.to_str().unwrap()],
    );
    let channel = server.channel().await;
    let boss = with_key(&channel, Some(&admin));
    CollectionsClient::new(boss.clone())
        .create_collection(proto::CreateCollectionRequest {
            name: "docs".into(),
            settings: None,
            placement: None,
        })
        .await
        .unwrap();
    DocumentsClient::new(boss.clone())
        .upsert(proto::UpsertRequest {
            collection: "docs".into(),
            documents: vec![doc("seed")],
        })
        .await
        .unwrap();

    use Code::{Ok as OK, PermissionDenied as DENIED};
    let expected: &[(&str, Code, Code, Code)] = &[
        // method, admin, writer, reader
        ("CreateCollection", OK, DENIED, DENIED),
        ("GetCollection", OK, OK, OK),
        ("ListCollections", OK, OK, OK),
        // The admin deletes the collection it just made; the others cannot.
        ("DeleteCollection", OK, DENIED, DENIED),
        ("Upsert", OK, OK, DENIED),
        ("BulkIngest", OK, OK, DENIED),
        ("GetDocument", OK, OK, OK),
        ("DeleteDocuments", OK, OK, DENIED),
        ("Search", OK, OK, OK),
        ("Embed", OK, OK, OK),
        ("Ask", OK, OK, OK),
        ("ListRecords", OK, OK, OK),
        ("ExportRecords", OK, OK, OK),
        ("DeleteRecords", OK, OK, OK),
    ];
    let got_admin = calls(&boss, "admin").await;
    let got_writer = calls(&with_key(&channel, Some(&writer)), "writer").await;
    let got_reader = calls(&with_key(&channel, Some(&reader)), "reader").await;
    for (i, (method, a, w, r)) in expected.iter().enumerate() {
        assert_eq!(got_admin[i], (*method, *a), "admin");
        assert_eq!(got_writer[i], (*method, *w), "writer");
        assert_eq!(got_reader[i], (*method, *r), "reader");
    }
    for (who, key) in [("no key", None), ("unknown key", Some("qk_0000"))] {
        for (method, c) in calls(&with_key(&channel, key), "anon").await {
            assert_eq!(c, Code::Unauthenticated, "{who}: {method}");
        }
    }
    // A key limited to "other" may not touch "docs", and lists nothing else.
    let guest = with_key(&channel, Some(&scoped));
    for (method, c) in calls(&guest, "guest").await {
        let want = match method {
            "CreateCollection" | "DeleteCollection" | "Upsert" | "BulkIngest"
            | "DeleteDocuments" | "GetCollection" | "GetDocument" | "Search" | "Ask" => DENIED,
            _ => OK,
        };
        assert_eq!(c, want, "guest: {method}");
    }
    let listed = CollectionsClient::new(guest)
        .list_collections(proto::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.collections.is_empty());

    // Records carry the principal; a reader sees only its own.
    let mut as_reader = HistoryClient::new(with_key(&channel, Some(&reader)));
    let mine = as_reader
        .list_records(proto::ListRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.records.len(), 1);
    assert_eq!(mine.records[0].principal, "analyst");
    let all = HistoryClient::new(boss.clone())
        .list_records(proto::ListRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.records.len(), 3);
    let boss_record = all.records.iter().find(|r| r.principal == "boss").unwrap();
    let err = as_reader
        .get_record(proto::GetRecordRequest {
            id: boss_record.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let deleted = as_reader
        .delete_records(proto::DeleteRecordsRequest {
            ids: vec![boss_record.id.clone()],
            session_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 0);

    // Health and reflection answer without a key.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok());

    // The command line sends QUARRY_API_KEY.
    let cli = |key: Option<&str>| {
        let mut c = Command::new(quarry_bin());
        c.args(["collections", "list"])
            .env("QUARRY_ADDR", &server.addr);
        match key {
            Some(k) => c.env("QUARRY_API_KEY", k),
            None => c.env_remove("QUARRY_API_KEY"),
        };
        c.output().unwrap()
    };
    let ok = cli(Some(&reader));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("docs"));
    let no = cli(None);
    assert!(!no.status.success());
    assert!(String::from_utf8_lossy(&no.stderr).contains("Unauthenticated"));

    // The keys never reach the logs.
    let logs = server.logs();
    for key in [&admin, &writer, &reader, &scoped] {
        assert!(!logs.contains(key.as_str()));
        assert!(!logs.contains(&key[3..]));
    }
    assert!(logs.contains("API keys loaded"), "{logs}");
    drop(channel);
    assert!(server.stop().success());
}

#[test]
fn auth_off_is_said_in_the_log() {
    let dir = data_dir();
    let mut server = TestServer::start(dir.path());
    let logs = server.logs();
    assert!(logs.contains("authentication is OFF"), "{logs}");
    assert!(server.stop().success());
}
