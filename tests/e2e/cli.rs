//! End to end: the `quarry collections` client subcommands against a real
//! server, in both human and `--json` output.

use crate::common;

use std::process::Command;

use common::{data_dir, quarry_bin, TestServer};

fn quarry(addr: &str, args: &[&str]) -> std::process::Output {
    Command::new(quarry_bin())
        .args(args)
        .env("QUARRY_ADDR", addr)
        .output()
        .unwrap()
}

#[test]
fn collections_subcommands_drive_the_server() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());

    let out = quarry(
        &server.addr,
        &[
            "collections",
            "create",
            "papers",
            "--chunk-size",
            "128",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["name"], "papers");
    assert_eq!(created["settings"]["chunk_size"], 128);

    let out = quarry(&server.addr, &["collections", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("papers")), "{text}");

    let out = quarry(&server.addr, &["collections", "get", "papers", "--json"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["document_count"], 0);

    // Errors: non-zero exit, the status code and the reason on stderr.
    let out = quarry(&server.addr, &["collections", "create", "papers"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AlreadyExists") && err.contains("papers"),
        "{err}"
    );

    let out = quarry(&server.addr, &["collections", "delete", "papers", "--json"]);
    assert!(out.status.success());
    let deleted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deleted["name"], "papers");

    let out = quarry(&server.addr, &["collections", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["collections"].as_array().unwrap().len(), 0);

    assert!(server.stop().success());
}

#[test]
fn an_unreachable_server_is_reported_plainly() {
    // Port 1 on loopback: nothing listens there.
    let out = quarry("http://127.0.0.1:1", &["collections", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach a quarry server at http://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn ask_and_history_subcommands_drive_the_server() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let ok = |args: &[&str]| {
        let out = quarry(&server.addr, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["collections", "create", "notes"]);
    // No documents: the fixed answer, without the model, recorded.
    let text = ok(&[
        "ask",
        "What is the tallest mountain?",
        "-c",
        "notes",
        "--timings",
    ]);
    assert!(text.contains(quarry_engine::NOT_FOUND_ANSWER), "{text}");
    assert!(
        text.contains("no_context") && text.contains("total"),
        "{text}"
    );
    let asked: serde_json::Value = serde_json::from_str(&ok(&[
        "ask",
        "And the deepest lake?",
        "-c",
        "notes",
        "--session",
        "s1",
        "--json",
    ]))
    .unwrap();
    let id = asked["record_id"].as_str().unwrap().to_owned();
    assert_eq!(asked["finish_reason"], "no_context");

    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["history", "list", "--json"])).unwrap();
    assert_eq!(listed["records"].as_array().unwrap().len(), 2);
    assert_eq!(listed["records"][0]["id"], id.as_str());
    let text = ok(&["history", "list", "--session", "s1"]);
    assert!(
        text.contains("deepest lake") && !text.contains("tallest"),
        "{text}"
    );
    let text = ok(&["history", "rate", &id, "-1", "--comment", "no answer"]);
    assert!(text.contains(&id), "{text}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["history", "show", &id, "--json"])).unwrap();
    assert_eq!(shown["rating"], -1);
    assert_eq!(shown["comment"], "no answer");

    let export = dir.path().join("export.jsonl");
    ok(&["history", "export", "-o", export.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["id"], id.as_str());
    assert_eq!(lines[0]["question"], "What is the tallest mountain?");

    let text = ok(&["history", "delete", "--session", "s1"]);
    assert!(text.contains("1 records deleted"), "{text}");
    let out = quarry(&server.addr, &["history", "show", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    assert!(server.stop().success());
}

/// The harness the tests and benchmarks share reports a server that exits
/// before listening with its own last words (here a setting out of range).
#[test]
fn a_server_that_cannot_start_is_reported_with_its_logs() {
    use quarry::serve_process::{Logs, ServeOptions, ServeProcess, ServeProcessError};
    let dir = data_dir();
    let options = ServeOptions {
        bin: std::path::Path::new(quarry_bin()),
        data_dir: dir.path(),
        args: &["--no-auth", "--max-top-k", "0"],
        rust_log: "info",
        startup_limit: std::time::Duration::from_secs(60),
    };
    match ServeProcess::start(&options, Logs::Lines) {
        Err(ServeProcessError::Exited { status, logs }) => {
            assert!(!status.success(), "{status}");
            assert!(logs.contains("--max-top-k"), "{logs}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a server with --max-top-k 0 listened"),
    }
}
