//! End to end: a stop signal while clients are writing. The server drains,
//! exits 0, and every write it acknowledged is there after a restart.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{data_dir, TestServer};
use quarry::proto::{self, collections_client::CollectionsClient};
use tokio::sync::Mutex;

async fn stop_while_writing(signal: libc::c_int) {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));

    let mut writers = Vec::new();
    for w in 0..4 {
        let mut client = CollectionsClient::new(channel.clone());
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            // Bounded: at most 500 calls per writer.
            for i in 0..500 {
                let name = format!("w{w}-{i}");
                let call = client.create_collection(proto::CreateCollectionRequest {
                    name: name.clone(),
                    settings: None,
                    placement: None,
                });
                match tokio::time::timeout(Duration::from_secs(30), call).await {
                    Ok(Ok(_)) => {
                        acked.lock().await.insert(name);
                    }
                    // Refused or cut off by the shutdown: not acknowledged.
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }));
    }

    // Let some writes land, then signal mid-stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().await.len() < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.signal(signal);
    let status = tokio::task::spawn_blocking(move || server.wait_exit())
        .await
        .unwrap();
    assert!(
        status.success(),
        "the server must exit 0 after the signal, got {status}"
    );
    for w in writers {
        w.await.unwrap();
    }
    drop(channel);

    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= 20,
        "only {} writes landed before the signal",
        acked.len()
    );

    let server = TestServer::start(dir.path());
    let mut client = CollectionsClient::new(server.channel().await);
    let stored: BTreeSet<String> = client
        .list_collections(proto::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .map(|c| c.name)
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    drop(client);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_writing_loses_no_acknowledged_write() {
    stop_while_writing(libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_writing_loses_no_acknowledged_write() {
    stop_while_writing(libc::SIGINT).await;
}
