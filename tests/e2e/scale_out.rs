//! Scale-out end to end: two Quarry nodes on one 3-node Qdrant cluster
//! (real processes on loopback). What one node writes the other finds,
//! answers from and lists in history; a SIGKILLed Qdrant node stops
//! neither searches, asks nor upserts, and rejoins with every replica
//! agreeing; a cluster that is down answers UNAVAILABLE naming Qdrant,
//! turns health NOT_SERVING, acknowledges nothing, and is used again once
//! it is back, without restarting Quarry.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use quarry::proto::{
    self, ask_event::Event, collections_client::CollectionsClient,
    documents_client::DocumentsClient, history_client::HistoryClient, rag_client::RagClient,
    retrieval_client::RetrievalClient,
};
use quarry::qdrant_process::QdrantCluster;
use serde_json::Value;
use tonic::transport::Channel;
use tonic::Code;

use crate::common::{data_dir, Backend, TestServer};
use crate::qdrant::qdrant_or_skip;

const LIMIT: Duration = Duration::from_secs(60);

fn doc(id: &str, text: &str) -> proto::Document {
    proto::Document {
        id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

async fn upsert(ch: &Channel, docs: Vec<proto::Document>) -> Result<(), tonic::Status> {
    DocumentsClient::new(ch.clone())
        .upsert(proto::UpsertRequest {
            collection: "kb".into(),
            documents: docs,
        })
        .await
        .map(|_| ())
}

async fn search(ch: &Channel, query: &str) -> Result<Vec<proto::Hit>, tonic::Status> {
    RetrievalClient::new(ch.clone())
        .search(proto::SearchRequest {
            collection: "kb".into(),
            query: query.into(),
            top_k: 3,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().hits)
}

/// Asks in extractive mode (no sampling: quick and exact); returns the
/// record id and the cited document ids.
async fn ask(ch: &Channel, question: &str) -> Result<(String, Vec<String>), tonic::Status> {
    let mut stream = RagClient::new(ch.clone())
        .ask(proto::AskRequest {
            collection: "kb".into(),
            question: question.into(),
            answer_mode: proto::AnswerMode::Extractive as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut cited = Vec::new();
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Citations(c)) => {
                cited = c.citations.into_iter().map(|c| c.document_id).collect()
            }
            Some(Event::Done(d)) => return Ok((d.record_id, cited)),
            _ => {}
        }
    }
    panic!("the answer ended without done")
}

async fn document_count(ch: &Channel) -> Result<u64, tonic::Status> {
    CollectionsClient::new(ch.clone())
        .get_collection(proto::GetCollectionRequest { name: "kb".into() })
        .await
        .map(|r| r.into_inner().document_count)
}

async fn health(ch: &Channel) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(ch.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "quarry.v1.Retrieval".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

/// Each shard's replicas, as every live node reports its local ones:
/// shard id -> [(points, state)].
fn replicas(
    cluster: &QdrantCluster,
    nodes: &[usize],
    qname: &str,
) -> BTreeMap<u64, Vec<(u64, String)>> {
    let mut out: BTreeMap<u64, Vec<(u64, String)>> = BTreeMap::new();
    for &i in nodes {
        let Ok(r) = ureq::get(&format!(
            "{}/collections/{qname}/cluster",
            cluster.http_url(i)
        ))
        .timeout(Duration::from_secs(5))
        .call() else {
            continue;
        };
        let v: Value = r.into_json().unwrap();
        for s in v["result"]["local_shards"].as_array().into_iter().flatten() {
            out.entry(s["shard_id"].as_u64().unwrap())
                .or_default()
                .push((
                    s["points_count"].as_u64().unwrap_or(0),
                    s["state"].as_str().unwrap_or("").to_owned(),
                ));
        }
    }
    out
}

/// Waits until every shard has `copies` active replicas holding the same
/// number of points, and returns them.
fn wait_replicas_agree(
    cluster: &QdrantCluster,
    qname: &str,
    copies: usize,
) -> BTreeMap<u64, Vec<(u64, String)>> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let r = replicas(cluster, &[0, 1, 2], qname);
        let agree = !r.is_empty()
            && r.values().all(|reps| {
                reps.len() == copies && reps.iter().all(|(n, s)| s == "Active" && *n == reps[0].0)
            });
        if agree {
            return r;
        }
        assert!(Instant::now() < deadline, "replicas never agreed: {r:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quarry_nodes_share_a_cluster_that_survives_a_node_and_an_outage() {
    let test = "scale_out::two_quarry_nodes_share_a_cluster_that_survives_a_node_and_an_outage";
    let Some(bin) = qdrant_or_skip(test) else {
        return;
    };
    let dir = data_dir();
    let mut cluster = QdrantCluster::start(&bin, &dir.path().join("qdrant"), 3, LIMIT).unwrap();
    let urls = cluster.grpc_urls();
    // A reaches the cluster through node 1 first, B through node 2.
    let on = |first: usize| Backend::Qdrant {
        url: (0..3)
            .map(|k| urls[(first + k) % 3].clone())
            .collect::<Vec<_>>()
            .join(","),
        prefix: "scale".into(),
    };
    let mut a = TestServer::on(
        &on(0),
        &dir.path().join("a"),
        &["--qdrant-timeout-secs", "5"],
    );
    let mut b = TestServer::on(
        &on(1),
        &dir.path().join("b"),
        &["--qdrant-timeout-secs", "5"],
    );
    let (ca, cb) = (a.channel().await, b.channel().await);

    let created = CollectionsClient::new(ca.clone())
        .create_collection(proto::CreateCollectionRequest {
            name: "kb".into(),
            settings: None,
            placement: Some(proto::Placement {
                shard_number: Some(3),
                replication_factor: Some(2),
                write_consistency_factor: Some(1),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let placement = created.placement.expect("Qdrant reports the placement");
    assert_eq!(
        (placement.shard_number, placement.replication_factor),
        (Some(3), Some(2))
    );

    // Written through A; found, answered from and listed through B.
    let mut acked: HashSet<String> = HashSet::new();
    let facts = [
        (
            "everest",
            "Mount Everest is 8,849 metres high, the highest mountain above sea level.",
        ),
        (
            "nile",
            "The Nile is about 6,650 kilometres long and flows into the Mediterranean Sea.",
        ),
        (
            "sahara",
            "The Sahara is the largest hot desert, covering about 9.2 million square kilometres.",
        ),
    ];
    upsert(&ca, facts.iter().map(|(i, t)| doc(i, t)).collect())
        .await
        .unwrap();
    acked.extend(facts.iter().map(|(i, _)| i.to_string()));
    for i in 0..30 {
        let id = format!("filler-{i}");
        upsert(
            &ca,
            vec![doc(
                &id,
                &format!("Filler note number {i} about nothing in particular."),
            )],
        )
        .await
        .unwrap();
        acked.insert(id);
    }
    // Qdrant may take a moment to show a new collection on every peer.
    let deadline = Instant::now() + LIMIT;
    let hits = loop {
        match search(&cb, "How high is Mount Everest?").await {
            Ok(h) => break h,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for B to see the collection: {e:?}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(hits[0].document_id, "everest", "{hits:?}");
    assert!(hits[0].dense_rank.is_some() && hits[0].keyword_rank.is_some());
    let (record, cited) = ask(&cb, "How long is the Nile?").await.unwrap();
    assert!(cited.contains(&"nile".to_string()), "{cited:?}");
    let listed = HistoryClient::new(ca.clone())
        .list_records(proto::ListRecordsRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.records.iter().any(|r| r.id == record),
        "A lists the record B wrote"
    );
    assert_eq!(document_count(&cb).await.unwrap(), acked.len() as u64);
    let qname = "scale_c_kb";
    let before = wait_replicas_agree(&cluster, qname, 2);
    assert_eq!(before.len(), 3, "{before:?}");

    // One Qdrant node (A's first) is SIGKILLed: both Quarry nodes go on.
    cluster.kill(0);
    for round in 0..5 {
        let id = format!("during-{round}");
        let text = format!("Note {round} written while a Qdrant node was down.");
        let (via, name) = if round % 2 == 0 {
            (&ca, "A")
        } else {
            (&cb, "B")
        };
        if let Err(e) = upsert(via, vec![doc(&id, &text)]).await {
            let logs = if name == "A" { a.logs() } else { b.logs() };
            panic!("upsert {round} through {name}: {e:?}\n{logs}");
        }
        acked.insert(id);
        let hits = search(via, "highest mountain above sea level")
            .await
            .unwrap();
        assert_eq!(hits[0].document_id, "everest");
        let (_, cited) = ask(via, "How large is the Sahara?").await.unwrap();
        assert!(cited.contains(&"sahara".to_string()), "{cited:?}");
    }
    assert_eq!(document_count(&ca).await.unwrap(), acked.len() as u64);

    // History pages: a page token from A continues on B (one secret for
    // every node), newest first, without repeats.
    let page = |ch: &Channel, token: String| {
        let ch = ch.clone();
        async move {
            HistoryClient::new(ch)
                .list_records(proto::ListRecordsRequest {
                    page_size: 2,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(&ca, String::new()).await;
    assert!(!first.next_page_token.is_empty());
    let second = page(&cb, first.next_page_token.clone()).await;
    let ids: Vec<&str> = first
        .records
        .iter()
        .chain(&second.records)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // It comes back, catches up, and every replica agrees.
    cluster.restart(0, LIMIT).unwrap();
    let after = wait_replicas_agree(&cluster, qname, 2);
    let total: u64 = after.values().map(|reps| reps[0].0).sum();
    assert_eq!(total, acked.len() as u64, "{after:?}");

    // The whole cluster goes away: UNAVAILABLE naming Qdrant, health
    // NOT_SERVING, and a write is not acknowledged.
    for i in 0..3 {
        cluster.kill(i);
    }
    let err = search(&ca, "Everest").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("Qdrant"), "{err:?}");
    let err = upsert(&cb, vec![doc("lost", "Never acknowledged.")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&ca).await
        != tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    {
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Back again: the same Quarry processes serve, nothing acknowledged
    // was lost, and health is SERVING.
    for i in 0..3 {
        cluster.restart(i, LIMIT).unwrap();
    }
    cluster.wait_peers(LIMIT).unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        match (document_count(&ca).await, document_count(&cb).await) {
            (Ok(x), Ok(y)) if x == acked.len() as u64 && y == x => break,
            other => {
                assert!(Instant::now() < deadline, "no recovery: {other:?}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    let hits = search(&cb, "How long is the Nile?").await.unwrap();
    assert_eq!(hits[0].document_id, "nile");
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&cb).await
        != tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    {
        assert!(
            Instant::now() < deadline,
            "health never turned SERVING again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((ca, cb));
    assert!(a.stop().success());
    assert!(b.stop().success());
    cluster.stop();
}
