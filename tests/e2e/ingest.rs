//! End to end: `quarry ingest` against a real server. A folder of mixed
//! files and a JSON-lines file with deliberately bad lines load with
//! exact counts and every bad record named by file:line; a second load
//! embeds nothing; a changed file is the only update; --strict stops at
//! the first bad record; a loader killed mid-run and run again leaves the
//! same collection as one clean run.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{data_dir, quarry_bin, TestServer};
use quarry::proto::{self, collections_client::CollectionsClient};

fn ingest(addr: &str, args: &[&str]) -> Output {
    Command::new(quarry_bin())
        .arg("ingest")
        .args(args)
        .env("QUARRY_ADDR", addr)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write_corpus(dir: &Path) {
    let files = dir.join("files");
    std::fs::create_dir_all(files.join("notes")).unwrap();
    std::fs::write(
        files.join("guide.md"),
        "# Guide\n\nHow to plant tulips in autumn.\n",
    )
    .unwrap();
    std::fs::write(
        files.join("notes/todo.txt"),
        "Water the garden on Mondays.\n",
    )
    .unwrap();
    std::fs::write(
        files.join("page.html"),
        "<html><head><title>Roses</title></head><body><p>Roses need <b>sun</b>.</p></body></html>",
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"Compost feeds the soil.\n").unwrap();
    std::fs::write(files.join("notes/compost.txt.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(files.join("broken.txt"), b"\xff\xfe not utf-8").unwrap();
    std::fs::write(files.join("ignored.pdf"), b"%PDF-1.4").unwrap();
    let big = "x".repeat(5 * 1024 * 1024);
    let lines = [
        r#"{"id": "j1", "title": "Ferns", "text": "Ferns like shade.", "metadata": {"kind": "plant"}}"#.to_owned(),
        "{not json".to_owned(),
        r#"{"id": "j3", "title": "No text"}"#.to_owned(),
        r#"{"_id": "j4", "text": "Moss grows on north sides."}"#.to_owned(),
        format!(r#"{{"id": "j5", "text": "{big}"}}"#),
        r#"{"id": "j6", "text": "Bees visit lavender."}"#.to_owned(),
    ];
    std::fs::write(dir.join("extra.jsonl"), lines.join("\n") + "\n").unwrap();
}

async fn counts(server: &TestServer, name: &str) -> (u64, u64) {
    let c = CollectionsClient::new(server.channel().await)
        .get_collection(proto::GetCollectionRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner();
    (c.document_count, c.chunk_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reports_bad_records_and_reloads_for_free() {
    let dir = data_dir();
    let server = TestServer::start(&dir.path().join("data"));
    write_corpus(dir.path());
    let files = dir.path().join("files");
    let extra = dir.path().join("extra.jsonl");
    let (files_s, extra_s) = (files.to_str().unwrap(), extra.to_str().unwrap());

    let out = ingest(
        &server.addr,
        &[files_s, extra_s, "-c", "garden", "--create", "--json"],
    );
    let first = json_of(&out);
    // Files: guide.md, notes/todo.txt, page.html, notes/compost.txt.gz
    // (broken.txt is bad, ignored.pdf is not read); JSONL: j1, j4, j6 (j5
    // is over the server's size limit; lines 2 and 3 are bad).
    assert_eq!(first["added"], 7, "{first}");
    assert_eq!(first["unchanged"], 0);
    assert_eq!(first["failed"], 4, "{first}");
    let failures = first["failures"].to_string();
    for place in [
        "broken.txt",
        "extra.jsonl:2",
        "extra.jsonl:3",
        "extra.jsonl:5",
    ] {
        assert!(failures.contains(place), "{place} in {failures}");
    }
    assert!(failures.contains("invalid UTF-8") && failures.contains("no \\\"text\\\" field"));
    assert!(first["chunks_embedded"].as_u64().unwrap() >= 7);
    assert_eq!(counts(&server, "garden").await.0, 7);

    // The document ids of files are their paths under the folder.
    let mut documents = proto::documents_client::DocumentsClient::new(server.channel().await);
    let doc = documents
        .get_document(proto::GetDocumentRequest {
            collection: "garden".into(),
            id: "notes/compost.txt.gz".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(doc.text.trim(), "Compost feeds the soil.");
    let page = documents
        .get_document(proto::GetDocumentRequest {
            collection: "garden".into(),
            id: "page.html".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.title, "Roses");
    assert!(
        page.text.contains("Roses need") && !page.text.contains("<b>"),
        "{}",
        page.text
    );

    // Again: everything unchanged, nothing embedded.
    let again = json_of(&ingest(
        &server.addr,
        &[files_s, extra_s, "-c", "garden", "--json"],
    ));
    assert_eq!(again["unchanged"], 7, "{again}");
    assert_eq!(again["added"], 0);
    assert_eq!(again["chunks_embedded"], 0);

    // One changed file: exactly it is updated.
    std::fs::write(
        files.join("notes/todo.txt"),
        "Water the garden on Tuesdays.\n",
    )
    .unwrap();
    let changed = json_of(&ingest(
        &server.addr,
        &[files_s, extra_s, "-c", "garden", "--json"],
    ));
    assert_eq!(changed["updated"], 1, "{changed}");
    assert_eq!(changed["unchanged"], 6);

    // --strict stops at the first bad record, naming it.
    let strict = ingest(&server.addr, &[extra_s, "-c", "garden", "--strict"]);
    assert!(!strict.status.success());
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("extra.jsonl:2") && err.contains("--strict"),
        "{err}"
    );

    // Human output names each bad record with its place.
    let human = ingest(&server.addr, &[files_s, "-c", "garden"]);
    assert!(human.status.success());
    let err = String::from_utf8_lossy(&human.stderr);
    assert!(err.contains("broken.txt: skipped: invalid UTF-8"), "{err}");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("0 added, 0 updated, 4 unchanged, 1 failed"),
        "{text}"
    );

    let missing = ingest(&server.addr, &[files_s, "-c", "nowhere"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_loader_rerun_ends_like_a_clean_run() {
    const DOCS: u64 = 2000;
    let dir = data_dir();
    let server = TestServer::start(&dir.path().join("data"));
    let corpus = dir.path().join("corpus.jsonl");
    let lines: Vec<String> = (0..DOCS)
        .map(|i| {
            serde_json::json!({
                "id": format!("d{i}"),
                "title": format!("Note {i}"),
                "text": format!("Note number {i} is about topic {} and mentions the value {}.", i % 17, i * 7),
            })
            .to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let path = corpus.to_str().unwrap();

    // Killed once documents have started to land.
    let mut loader = Command::new(quarry_bin())
        .args([
            "ingest",
            path,
            "-c",
            "interrupted",
            "--create",
            "--batch-docs",
            "16",
        ])
        .env("QUARRY_ADDR", &server.addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let found = CollectionsClient::new(server.channel().await)
            .get_collection(proto::GetCollectionRequest {
                name: "interrupted".into(),
            })
            .await;
        if let Ok(c) = found {
            seen = c.into_inner().document_count;
            if seen > 0 {
                break;
            }
        }
    }
    loader.kill().unwrap();
    let _ = loader.wait();
    assert!(seen > 0, "nothing loaded before the kill");
    let partial = counts(&server, "interrupted").await.0;
    assert!(partial < DOCS, "the loader finished before it was killed");

    let rerun = json_of(&ingest(
        &server.addr,
        &[path, "-c", "interrupted", "--json"],
    ));
    assert_eq!(
        rerun["added"].as_u64().unwrap() + rerun["unchanged"].as_u64().unwrap(),
        DOCS,
        "{rerun}"
    );
    // What the killed run stored is whole and is not loaded twice.
    assert!(rerun["unchanged"].as_u64().unwrap() >= partial, "{rerun}");
    let clean = json_of(&ingest(
        &server.addr,
        &[path, "-c", "clean", "--create", "--json"],
    ));
    assert_eq!(clean["added"], DOCS);
    assert_eq!(
        counts(&server, "interrupted").await,
        counts(&server, "clean").await
    );
    assert!(server.stop().success());
}
