//! End to end: `quarry quickstart --once` on a fresh user data directory
//! fetches nothing it has, serves, loads the FAQ, answers the sample
//! question with its sources over gRPC and exits; a second run finds every
//! document unchanged (nothing embedded) and answers again.

use crate::common;

use std::process::Command;

use common::{ensure_models, quarry_bin};

fn quickstart(home: &std::path::Path) -> String {
    let out = Command::new(quarry_bin())
        .args([
            "quickstart",
            "--once",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env("XDG_DATA_HOME", home)
        .env_remove("QUARRY_DATA_DIR")
        .env_remove("QUARRY_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickstart_answers_then_reuses_everything() {
    ensure_models();
    let home = tempfile::tempdir().unwrap();
    let first = quickstart(home.path());
    assert!(first.contains("(cached)"), "{first}");
    assert!(
        first.contains("10 added, 0 updated, 0 unchanged"),
        "{first}"
    );
    assert!(
        first.contains("Sources:\n  [1] How does Quarry search documents?"),
        "{first}"
    );
    assert!(first.contains("quarry ask"), "{first}");
    assert!(first.contains("grpcurl -plaintext"), "{first}");
    // The console's address, and the HTTP examples.
    assert!(
        first.contains("web console and HTTP API at http://127.0.0.1:"),
        "{first}"
    );
    assert!(first.contains("/v1/collections/"), "{first}");
    assert!(home.path().join("quarry/quickstart/store").is_dir());

    let second = quickstart(home.path());
    assert!(
        second.contains("0 added, 0 updated, 10 unchanged, 0 chunks embedded"),
        "{second}"
    );
    assert!(second.contains("Sources:\n  [1]"), "{second}");
}
