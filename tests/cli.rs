//! End to end: the `quarry collections` client subcommands against a real
//! server, in both human and `--json` output.

mod common;

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
