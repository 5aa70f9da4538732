//! End to end: the Collections service over tonic against the real server
//! binary, every error code, and persistence across a graceful restart.

use crate::common;

use common::{data_dir, TestServer};
use quarry::proto::{self, collections_client::CollectionsClient};
use tonic::Code;

type Client = CollectionsClient<tonic::transport::Channel>;

async fn create(
    client: &mut Client,
    name: &str,
    settings: Option<proto::CollectionSettings>,
) -> Result<proto::Collection, tonic::Status> {
    client
        .create_collection(proto::CreateCollectionRequest {
            name: name.into(),
            settings,
            placement: None,
        })
        .await
        .map(|r| r.into_inner())
}

async fn names(client: &mut Client) -> Vec<String> {
    client
        .list_collections(proto::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .map(|c| c.name)
        .collect()
}

fn assert_status(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "message {:?} should mention {needle:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_work_end_to_end_and_survive_a_restart() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let mut client = CollectionsClient::new(server.channel().await);

    let docs = create(&mut client, "docs", None).await.unwrap();
    assert_eq!(docs.name, "docs");
    assert_eq!((docs.document_count, docs.chunk_count), (0, 0));
    let s = docs.settings.unwrap();
    assert_eq!(s.language.as_deref(), Some("en"));
    assert_eq!(
        (
            s.chunk_size,
            s.chunk_overlap,
            s.hnsw_m,
            s.hnsw_ef_construction,
            s.hnsw_ef_search
        ),
        (Some(256), Some(32), Some(16), Some(200), Some(64))
    );

    let custom = proto::CollectionSettings {
        chunk_size: Some(128),
        chunk_overlap: Some(16),
        hnsw_m: Some(32),
        hnsw_ef_construction: Some(400),
        hnsw_ef_search: Some(128),
        language: Some("French".into()),
        quantization: Some("INT8".into()),
    };
    let notes = create(&mut client, "Notes_2-b", Some(custom.clone()))
        .await
        .unwrap();
    // The language and the quantisation come back as their codes.
    assert_eq!(
        notes.settings,
        Some(proto::CollectionSettings {
            language: Some("fr".into()),
            quantization: Some("int8".into()),
            ..custom
        })
    );
    create(&mut client, "scratch", None).await.unwrap();

    let got = client
        .get_collection(proto::GetCollectionRequest {
            name: "Notes_2-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, notes);
    assert_eq!(names(&mut client).await, ["Notes_2-b", "docs", "scratch"]);

    let deleted = client
        .delete_collection(proto::DeleteCollectionRequest {
            name: "scratch".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.name, "scratch");
    assert_eq!(names(&mut client).await, ["Notes_2-b", "docs"]);

    // Every error returns its code and names what is wrong.
    assert_status(
        create(&mut client, "", None).await,
        Code::InvalidArgument,
        "name: must not be empty",
    );
    assert_status(
        create(&mut client, &"x".repeat(65), None).await,
        Code::InvalidArgument,
        "the limit is 64",
    );
    assert_status(
        create(&mut client, "has space", None).await,
        Code::InvalidArgument,
        "name: contains ' '",
    );
    assert_status(
        create(&mut client, "dots.no", None).await,
        Code::InvalidArgument,
        "name",
    );
    for (settings, field) in [
        (
            proto::CollectionSettings {
                chunk_size: Some(4),
                ..Default::default()
            },
            "settings.chunk_size",
        ),
        (
            proto::CollectionSettings {
                chunk_size: Some(64),
                chunk_overlap: Some(40),
                ..Default::default()
            },
            "settings.chunk_overlap",
        ),
        (
            proto::CollectionSettings {
                hnsw_m: Some(0),
                ..Default::default()
            },
            "settings.hnsw_m",
        ),
        (
            proto::CollectionSettings {
                hnsw_ef_construction: Some(5000),
                ..Default::default()
            },
            "settings.hnsw_ef_construction",
        ),
        (
            proto::CollectionSettings {
                hnsw_ef_search: Some(1),
                ..Default::default()
            },
            "settings.hnsw_ef_search",
        ),
        (
            proto::CollectionSettings {
                language: Some("klingon".into()),
                ..Default::default()
            },
            "settings.language: \"klingon\" is not a supported language; choose one of ar, da",
        ),
        (
            proto::CollectionSettings {
                quantization: Some("int4".into()),
                ..Default::default()
            },
            "settings.quantization: \"int4\" is not a quantisation; choose none or int8",
        ),
    ] {
        assert_status(
            create(&mut client, "fresh", Some(settings)).await,
            Code::InvalidArgument,
            field,
        );
    }
    assert_status(
        create(&mut client, "docs", None).await,
        Code::AlreadyExists,
        "\"docs\" already exists",
    );
    assert_status(
        client
            .get_collection(proto::GetCollectionRequest {
                name: "missing".into(),
            })
            .await,
        Code::NotFound,
        "\"missing\" does not exist",
    );
    assert_status(
        client
            .delete_collection(proto::DeleteCollectionRequest {
                name: "scratch".into(),
            })
            .await,
        Code::NotFound,
        "\"scratch\" does not exist",
    );
    assert_status(
        client
            .get_collection(proto::GetCollectionRequest {
                name: "bad/name".into(),
            })
            .await,
        Code::InvalidArgument,
        "name",
    );
    // Failed calls changed nothing.
    assert_eq!(names(&mut client).await, ["Notes_2-b", "docs"]);

    drop(client);
    let status = server.stop();
    assert!(
        status.success(),
        "SIGTERM must stop the server with exit 0, got {status}"
    );

    let server = TestServer::start(dir.path());
    let mut client = CollectionsClient::new(server.channel().await);
    assert_eq!(names(&mut client).await, ["Notes_2-b", "docs"]);
    let again = client
        .get_collection(proto::GetCollectionRequest {
            name: "Notes_2-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, notes, "settings and creation time survive a restart");
    // The deleted name is free again.
    create(&mut client, "scratch", None).await.unwrap();
    drop(client);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = data_dir();
    let first = TestServer::start(dir.path());
    let output = std::process::Command::new(common::quarry_bin())
        .args([
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("only one quarry process may use a data directory"),
        "{stderr}"
    );
    assert!(first.stop().success());
}
