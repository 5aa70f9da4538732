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

/// A small deterministic generator (xorshift), for the equivalence test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KEYS: [&str; 4] = ["color", "n", "ok", "odd.key\"[0]"];
const WORDS: [&str; 3] = ["red", "blue", "dark green"];
const NUMBERS: [f64; 6] = [-1.5, 0.0, 1.0, 2.0, 3.5, 4.0];

fn value(rng: &mut Rng, key: usize) -> quarry_core::MetaValue {
    use quarry_core::MetaValue;
    match (key, rng.below(2)) {
        (0 | 3, 0) => MetaValue::String(WORDS[rng.below(3) as usize].into()),
        (0 | 3, _) => MetaValue::StringList(
            (0..1 + rng.below(2))
                .map(|_| WORDS[rng.below(3) as usize].to_owned())
                .collect(),
        ),
        (1, 0) => MetaValue::Int(rng.below(6) as i64 - 1),
        (1, _) => MetaValue::Double(NUMBERS[rng.below(6) as usize]),
        _ => MetaValue::Bool(rng.below(2) == 0),
    }
}

fn random_filter(rng: &mut Rng, depth: u32) -> quarry_core::Filter {
    use quarry_core::Filter;
    let key = rng.below(4) as usize;
    match (depth, rng.below(6)) {
        (d, 0) if d < 3 => Filter::And(
            (0..1 + rng.below(3))
                .map(|_| random_filter(rng, d + 1))
                .collect(),
        ),
        (d, 1) if d < 3 => Filter::Or(
            (0..1 + rng.below(3))
                .map(|_| random_filter(rng, d + 1))
                .collect(),
        ),
        (_, 2) => Filter::In {
            key: KEYS[key].into(),
            values: (0..1 + rng.below(3)).map(|_| value(rng, key)).collect(),
        },
        (_, 3) => Filter::Range {
            key: KEYS[1].into(),
            gte: (rng.below(2) == 0).then(|| NUMBERS[rng.below(6) as usize]),
            gt: (rng.below(3) == 0).then(|| NUMBERS[rng.below(6) as usize]),
            lte: (rng.below(2) == 0).then(|| NUMBERS[rng.below(6) as usize]),
            lt: (rng.below(3) == 0).then(|| NUMBERS[rng.below(6) as usize]),
        },
        _ => Filter::Equals {
            key: KEYS[key].into(),
            value: value(rng, key),
        },
    }
}

/// Every Quarry filter selects in Qdrant exactly the points whose metadata
/// it matches in Quarry (strings, string lists, ints and doubles compared
/// as numbers, booleans, nesting, and a key full of JSON-path characters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarry_filters_select_the_same_points_in_qdrant() {
    use qdrant_client::qdrant::point_id::PointIdOptions;
    use qdrant_client::qdrant::{PointStruct, ScrollPointsBuilder, UpsertPointsBuilder};
    use qdrant_client::{Payload, Qdrant};
    let Some(bin) = qdrant_or_skip("quarry_filters_select_the_same_points_in_qdrant") else {
        return;
    };
    let dir = data_dir();
    let cluster = QdrantCluster::start(&bin, dir.path(), 1, Duration::from_secs(60)).unwrap();
    ureq::put(&format!("{}/collections/f", cluster.http_url(0)))
        .send_json(json!({"vectors": {"size": 1, "distance": "Dot"}}))
        .unwrap();
    let client = Qdrant::from_url(&cluster.grpc_url(0)).build().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut docs = Vec::new();
    let mut points = Vec::new();
    for id in 1..=80u64 {
        let mut m = quarry_core::Metadata::new();
        for (k, key) in KEYS.iter().enumerate() {
            if rng.below(4) != 0 {
                m.insert((*key).to_owned(), value(&mut rng, k));
            }
        }
        let payload = Payload::try_from(json!({"m": quarry_qdrant::metadata_payload(&m)})).unwrap();
        points.push(PointStruct::new(id, vec![1.0f32], payload));
        docs.push((id, m));
    }
    client
        .upsert_points(UpsertPointsBuilder::new("f", points).wait(true))
        .await
        .unwrap();
    let mut nonempty = 0;
    for _ in 0..300 {
        let filter = random_filter(&mut rng, 0);
        let want: Vec<u64> = docs
            .iter()
            .filter(|(_, m)| filter.matches(m))
            .map(|(id, _)| *id)
            .collect();
        let got = client
            .scroll(
                ScrollPointsBuilder::new("f")
                    .filter(quarry_qdrant::filter_of(&filter))
                    .limit(1000)
                    .with_payload(false),
            )
            .await
            .unwrap();
        let mut got: Vec<u64> = got
            .result
            .iter()
            .filter_map(|p| match p.id.as_ref()?.point_id_options.as_ref()? {
                PointIdOptions::Num(n) => Some(*n),
                PointIdOptions::Uuid(_) => None,
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "filter {filter:?}");
        nonempty += usize::from(!want.is_empty());
    }
    // The generated filters are not trivially empty.
    assert!(
        nonempty > 100,
        "{nonempty} of 300 filters matched something"
    );
    cluster.stop();
}

fn record(id: u64, session: &str) -> quarry_core::Record {
    quarry_core::Record {
        id: quarry_core::RecordId(id),
        created_at: 1,
        collection: "c".into(),
        question: format!("question {id}"),
        answer: "answer".into(),
        session_id: session.into(),
        principal: String::new(),
        retrieved: vec![],
        prompt: String::new(),
        citations: vec![],
        generator_model: String::new(),
        embedding_model: String::new(),
        generation_json: String::new(),
        prompt_tokens: 0,
        answer_tokens: 0,
        timings: Default::default(),
        finish_reason: String::new(),
        rating: None,
        comment: String::new(),
        previous_record_id: None,
        answer_mode: Default::default(),
        generated_answer: String::new(),
        evidence: vec![],
        sentences: vec![],
        supported_share: None,
        replaced_sentences: 0,
        dropped_sentences: 0,
    }
}

/// Record ids that differ only in their low bits (the same millisecond)
/// page exactly: across pages, newest or oldest first, within a session;
/// a fresh insert never takes an existing id.
#[test]
fn records_page_exactly_over_adjacent_large_ids() {
    use quarry_engine::storage::RecordStorage;
    let Some(crate::common::Backend::Qdrant { url, prefix }) =
        crate::common::Backend::qdrant("qdrant::records_page_exactly_over_adjacent_large_ids")
    else {
        return;
    };
    let mut config = quarry_qdrant::QdrantConfig::new(vec![url]);
    config.prefix = prefix;
    let storage = quarry_qdrant::QdrantStorage::connect(&config, 4, None).unwrap();
    let records = storage.qdrant_records();
    // The largest ids there will be (the year 2093), adjacent.
    let base = (1u64 << 53) - 1_000;
    let ids: Vec<u64> = (0..300).map(|k| base + k).collect();
    for &id in &ids {
        let session = if id % 3 == 0 { "s3" } else { "other" };
        records.restore(&record(id, session)).unwrap();
    }
    let newest: Vec<u64> = records
        .newest_first(None)
        .map(|r| r.unwrap().id.0)
        .collect();
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(newest, want);
    let before: Vec<u64> = records
        .newest_first(Some(quarry_core::RecordId(base + 200)))
        .map(|r| r.unwrap().id.0)
        .collect();
    assert_eq!(before, want[100..].to_vec());
    let oldest: Vec<u64> = records.oldest_first().map(|r| r.unwrap().id.0).collect();
    assert_eq!(oldest, ids);
    let session: Vec<u64> = records.session_ids("s3").map(|r| r.unwrap().0).collect();
    let want: Vec<u64> = ids.iter().rev().copied().filter(|i| i % 3 == 0).collect();
    assert_eq!(session, want);
    assert_eq!(records.count_all().unwrap(), 300);
    assert_eq!(
        records
            .delete(&[quarry_core::RecordId(base), quarry_core::RecordId(1)])
            .unwrap(),
        1
    );
    let in_s3 = ids.iter().filter(|&&i| i % 3 == 0 && i != base).count() as u64;
    assert_eq!(records.delete_session("s3").unwrap(), in_s3);
    assert_eq!(records.count_all().unwrap(), 299 - in_s3);
    let fresh = records.insert(record(0, "new")).unwrap();
    assert!(fresh.id.0 > 0 && fresh.id.0 < base, "{:?}", fresh.id);
    assert_eq!(records.get(fresh.id).unwrap().session_id, "new");
}
