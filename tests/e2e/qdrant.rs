//! The Qdrant harness (`quarry::qdrant_process`) against the real engine:
//! three nodes form a cluster on loopback, hold a sharded and replicated
//! collection, and a SIGKILLed node rejoins from its storage. The Qdrant
//! backend's tests build on this harness.

use std::path::PathBuf;
use std::time::Duration;

use quarry::qdrant_process::{qdrant_bin, QdrantCluster};
use serde_json::{json, Value};

use crate::common::data_dir;

/// The Qdrant binary; in CI its absence fails the test, elsewhere the
/// test says it was not run and why.
pub fn qdrant_or_skip(test: &str) -> Option<PathBuf> {
    match qdrant_bin() {
        Some(bin) => Some(bin),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI must provide Qdrant (.ci/run unpacks ../shared/vendor/qdrant)")
        }
        None => {
            eprintln!(
                "{test}: NOT RUN: no Qdrant binary (set QUARRY_QDRANT_BIN, or run .ci/run, which unpacks ../shared/vendor/qdrant into $HOME/.cache/quarry/qdrant)"
            );
            None
        }
    }
}

fn count(cluster: &QdrantCluster, node: usize) -> Option<u64> {
    let v: Value = ureq::post(&format!(
        "{}/collections/t/points/count",
        cluster.http_url(node)
    ))
    .send_json(json!({"exact": true}))
    .ok()?
    .into_json()
    .ok()?;
    v["result"]["count"].as_u64()
}

#[test]
fn a_three_node_cluster_forms_and_a_killed_node_rejoins() {
    let Some(bin) = qdrant_or_skip("a_three_node_cluster_forms_and_a_killed_node_rejoins") else {
        return;
    };
    let dir = data_dir();
    let limit = Duration::from_secs(60);
    let mut cluster = QdrantCluster::start(&bin, dir.path(), 3, limit).unwrap();
    for i in 0..3 {
        assert_eq!(cluster.peers(i), Some((3, true)), "node {}", i + 1);
    }
    let created: Value = ureq::put(&format!("{}/collections/t", cluster.http_url(0)))
        .send_json(json!({
            "vectors": {"size": 4, "distance": "Cosine"},
            "shard_number": 3, "replication_factor": 2, "write_consistency_factor": 1
        }))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(created["result"], true, "{created}");
    let points: Vec<Value> = (1..=30)
        .map(|i| json!({"id": i, "vector": [1.0, i as f32, 0.5, 0.25]}))
        .collect();
    ureq::put(&format!(
        "{}/collections/t/points?wait=true",
        cluster.http_url(1)
    ))
    .send_json(json!({"points": points}))
    .unwrap();
    for i in 0..3 {
        assert_eq!(count(&cluster, i), Some(30), "node {}", i + 1);
    }
    // A node killed: the others answer; restarted, it rejoins and agrees.
    cluster.kill(2);
    assert_eq!(count(&cluster, 0), Some(30));
    cluster.restart(2, limit).unwrap();
    cluster.wait_peers(limit).unwrap();
    assert_eq!(count(&cluster, 2), Some(30));
    assert_eq!(cluster.grpc_urls().len(), 3);
    cluster.stop();
}
