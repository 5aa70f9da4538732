//! The data directory's disk running out or turning read-only, on a real
//! server whose data directory is a small tmpfs (mounted by the test, so
//! it runs as root, as CI does):
//!
//! - under the free-space reserve, document writes are refused with
//!   RESOURCE_EXHAUSTED while searches, Ask, ratings and deletes work, and
//!   writes resume by themselves once space is freed;
//! - with the reserve off and the disk truly full, the failed write is
//!   RESOURCE_EXHAUSTED, later writes UNAVAILABLE, reads still work, and a
//!   restart with space finds every acknowledged document, the three chunk
//!   counts equal;
//! - a data directory made immutable under a running server (no new files
//!   or renames): writes UNAVAILABLE, reads work; a server started on a
//!   read-only file system exits with a message naming the directory; and
//!   after either, nothing acknowledged is lost.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{data_dir, quarry_bin, TestServer};
use quarry::proto::{
    self, ask_event::Event, collections_client::CollectionsClient,
    documents_client::DocumentsClient, history_client::HistoryClient, rag_client::RagClient,
    retrieval_client::RetrievalClient,
};
use tonic::transport::Channel;
use tonic::Code;

const COLLECTION: &str = "kb";

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Self {
        let parent = data_dir();
        let path = parent.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} ({status}): this test needs root (CAP_SYS_ADMIN), as CI \
             has; see docs/reliability.md",
            path.display()
        );
        Self {
            path,
            _parent: parent,
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }

    /// Fills the disk with a file until `leave` bytes are free (or no
    /// more can be written, for 0).
    fn fill(&self, leave: u64) -> PathBuf {
        let path = self.path.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0x5au8; 256 * 1024];
        loop {
            let free = fs4_free(&self.path);
            if free <= leave {
                break;
            }
            let n = (free - leave).min(block.len() as u64) as usize;
            if f.write_all(&block[..n]).is_err() {
                break;
            }
            if f.flush().is_err() {
                break;
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Sets or clears the immutable attribute of everything under `path`.
fn chattr(path: &Path, flag: &str) {
    let status = Command::new("chattr")
        .args(["-R", flag])
        .arg(path)
        .status()
        .expect("run chattr");
    assert!(status.success(), "chattr -R {flag} {}", path.display());
}

/// Free bytes of the file system holding `path`.
fn fs4_free(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-struct.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

fn doc(id: &str, text: &str) -> proto::Document {
    proto::Document {
        id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// A distinct, searchable text for document `n`.
fn text(n: usize) -> String {
    format!(
        "Document {n} describes shipment {n} of crate lot {} at warehouse {}. {}",
        n * 7919 % 10007,
        n % 13,
        "Inventory records list pallets, seals and the inspection outcome. ".repeat(4)
    )
}

async fn upsert(channel: &Channel, ids: std::ops::Range<usize>) -> Result<(), tonic::Status> {
    DocumentsClient::new(channel.clone())
        .upsert(proto::UpsertRequest {
            collection: COLLECTION.into(),
            documents: ids.map(|n| doc(&format!("doc-{n}"), &text(n))).collect(),
        })
        .await
        .map(|_| ())
}

async fn create(channel: &Channel) {
    common::create_collection(channel, COLLECTION).await;
}

/// Document `doc-n`'s stored text.
async fn stored_text(channel: &Channel, n: usize) -> String {
    DocumentsClient::new(channel.clone())
        .get_document(proto::GetDocumentRequest {
            collection: COLLECTION.into(),
            id: format!("doc-{n}"),
        })
        .await
        .unwrap_or_else(|s| panic!("doc-{n}: {s}"))
        .into_inner()
        .text
}

/// Asserts that a hybrid search for document `n`'s text finds it first.
async fn assert_found(channel: &Channel, n: usize) {
    let hits = RetrievalClient::new(channel.clone())
        .search(proto::SearchRequest {
            collection: COLLECTION.into(),
            query: text(n),
            top_k: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].document_id, format!("doc-{n}"));
}

/// Every acknowledged document is there with its text, one of them is
/// found by search, and the chunk counts of sled, HNSW and tantivy agree.
async fn assert_reads(channel: &Channel, acked: usize) {
    for n in 0..acked {
        assert_eq!(stored_text(channel, n).await, text(n));
    }
    assert_found(channel, acked / 2).await;
    common::assert_index_counts_agree(channel, COLLECTION).await;
}

/// An Ask answered to the end, and the id of its record.
async fn ask(channel: &Channel) -> String {
    let mut stream = RagClient::new(channel.clone())
        .ask(proto::AskRequest {
            collection: COLLECTION.into(),
            question: "Which warehouse holds crate lot 7919?".into(),
            generation: Some(proto::GenerationParams {
                max_new_tokens: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut id = None;
    while let Some(event) = stream.message().await.unwrap() {
        if let Some(Event::Done(d)) = event.event {
            id = Some(d.record_id);
        }
    }
    id.expect("a done event")
}

async fn rate(channel: &Channel, id: &str) -> Result<(), tonic::Status> {
    HistoryClient::new(channel.clone())
        .rate_record(proto::RateRecordRequest {
            id: id.into(),
            score: 4,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

const BATCH: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_loses_nothing() {
    let disk = Tmpfs::mount(96);
    let data = disk.path.join("data");
    let reserve = ["--min-free-disk-mb", "24"];
    let server = TestServer::start_with(&data, &reserve);
    let channel = server.channel().await;
    create(&channel).await;
    upsert(&channel, 0..BATCH).await.unwrap();
    let mut acked = BATCH;

    // Under the reserve: refused before anything is written.
    let filler = disk.fill(20 * 1024 * 1024);
    let refused = upsert(&channel, acked..acked + BATCH).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("under the reserve of 24 MiB (--min-free-disk-mb)"),
        "{refused:?}"
    );
    let refused = CollectionsClient::new(channel.clone())
        .create_collection(proto::CreateCollectionRequest {
            name: "another".into(),
            settings: None,
            placement: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Reads, Ask, ratings and deletes go on.
    assert_reads(&channel, acked).await;
    let record = ask(&channel).await;
    rate(&channel, &record).await.unwrap();
    DocumentsClient::new(channel.clone())
        .delete_documents(proto::DeleteDocumentsRequest {
            collection: COLLECTION.into(),
            ids: vec![format!("doc-{}", acked - 1)],
            filter: None,
        })
        .await
        .unwrap();
    acked -= 1;
    // Space freed: writes resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    upsert(&channel, acked..acked + BATCH).await.unwrap();
    acked += BATCH;
    assert_reads(&channel, acked).await;
    assert!(server.stop().success());

    // No reserve, and a disk with no room at all: sled's flush fails.
    let mut server = TestServer::start_with(&data, &["--min-free-disk-mb", "0"]);
    let channel = server.channel().await;
    let filler = disk.fill(0);
    let failed = upsert(&channel, acked..acked + BATCH).await.unwrap_err();
    assert_eq!(
        failed.code(),
        Code::ResourceExhausted,
        "{failed:?}\n{}",
        server.logs()
    );
    assert!(failed.message().contains("disk is full"), "{failed:?}");
    let latched = upsert(&channel, acked + BATCH..acked + 2 * BATCH)
        .await
        .unwrap_err();
    assert_eq!(latched.code(), Code::Unavailable, "{latched:?}");
    assert!(
        latched
            .message()
            .contains("refuses writes since one failed"),
        "{latched:?}"
    );
    let latched = rate(&channel, &record).await.unwrap_err();
    assert_eq!(latched.code(), Code::Unavailable, "{latched:?}");
    // Reads go on (the failed batch may show in the store's memory until
    // the restart; it was never acknowledged, so either way is right).
    for n in (0..acked).step_by(7) {
        assert_eq!(stored_text(&channel, n).await, text(n));
    }
    assert_found(&channel, 3).await;
    // A stop with a full disk still ends the process.
    let _ = server.stop();

    std::fs::remove_file(&filler).unwrap();
    let server = TestServer::start_with(&data, &reserve);
    let channel = server.channel().await;
    assert_reads(&channel, acked).await;
    let r = HistoryClient::new(channel.clone())
        .get_record(proto::GetRecordRequest { id: record })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.rating, Some(4));
    upsert(&channel, acked..acked + BATCH).await.unwrap();
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_dir_refuses_writes_keeps_reads_and_loses_nothing() {
    let disk = Tmpfs::mount(64);
    let data = disk.path.join("data");
    let small_reserve = ["--min-free-disk-mb", "8"];
    let server = TestServer::start_with(&data, &small_reserve);
    let channel = server.channel().await;
    create(&channel).await;
    upsert(&channel, 0..BATCH).await.unwrap();

    // Under the running server the directory stops taking changes: Linux
    // will not remount a file system read-only while a process holds a
    // file on it open for writing (sled does), so the test makes every
    // file and folder immutable instead (chattr +i: no new files, no
    // renames, even for root). Open files still take writes, as on a disk
    // that fails part way; the first write that needs a new file fails.
    chattr(&data, "+i");
    let failed = upsert(&channel, BATCH..2 * BATCH).await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    println!(
        "first write on the immutable directory: {}",
        failed.message()
    );
    let latched = upsert(&channel, 2 * BATCH..3 * BATCH).await.unwrap_err();
    assert_eq!(latched.code(), Code::Unavailable, "{latched:?}");
    assert!(
        latched
            .message()
            .contains("refuses writes since one failed"),
        "{latched:?}"
    );
    for n in 0..BATCH {
        assert_eq!(stored_text(&channel, n).await, text(n));
    }
    assert_found(&channel, 5).await;
    // The stop's checkpoint cannot be written; the process still ends.
    let _ = server.stop();
    chattr(&data, "-i");

    // And a start on a read-only file system: a clear exit with the
    // directory named, not a hang; nothing lost once it is writable.
    disk.remount("ro");
    let out = Command::new(quarry_bin())
        .args([
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");

    disk.remount("rw");
    let server = TestServer::start_with(&data, &small_reserve);
    let channel = server.channel().await;
    assert_reads(&channel, BATCH).await;
    upsert(&channel, BATCH..2 * BATCH).await.unwrap();
    assert_reads(&channel, 2 * BATCH).await;
    assert!(server.stop().success());
}
