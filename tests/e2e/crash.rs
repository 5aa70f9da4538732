//! Crash safety of the real server: rounds of BulkIngest, each ended by a
//! SIGKILL at a seeded moment inside one of the write path's stages
//! (embedding, the store's write, the index apply, a dense checkpoint
//! save), found from the server's own debug lines around each stage. Every
//! restart must show:
//!
//! - every document of an acknowledged BulkIngest call, by id with its text
//!   and as the top hit of keyword and of vector search for that text;
//! - a document of the call in flight either absent or whole (its text is
//!   one that was sent), never a mix;
//! - no document twice: the stored chunk count equals the sum over the
//!   documents, and the HNSW and tantivy counts equal it;
//! - every record (Ask, rating) written before the kill, as it was.
//!
//! Then the indexes are damaged (HNSW checkpoint truncated, tantivy folder
//! deleted, both) and each restart must rebuild from the store, say so in
//! its log, and answer the same searches with the same documents.
//!
//! The seed is printed; `QUARRY_CRASH_SEED=N` replays a run.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{data_dir, TestServer};
use quarry::proto::{
    self, ask_event::Event, collections_client::CollectionsClient,
    documents_client::DocumentsClient, history_client::HistoryClient, rag_client::RagClient,
    retrieval_client::RetrievalClient,
};
use tonic::transport::Channel;
use tonic::Code;

const COLLECTION: &str = "crash";
const ROUNDS: u64 = 24;
const BATCH: usize = 16;
const BATCHES_PER_CALL: usize = 2;
/// Earlier documents rewritten in each call, so that kills also land in
/// replacements (old chunks deleted, new ones added).
const REWRITES_PER_CALL: usize = 2;

/// A stage of the write path, between two of the server's debug lines.
struct Stage {
    name: &'static str,
    begins: &'static str,
    ends: &'static str,
    /// The kill comes this long (at most, seeded) after `begins` is read.
    max_delay_us: u64,
}

const STAGES: [Stage; 4] = [
    Stage {
        name: "embedding",
        begins: "embedding chunks",
        ends: "chunks embedded",
        max_delay_us: 40_000,
    },
    Stage {
        name: "store write",
        begins: "writing documents to the store",
        ends: "documents stored",
        max_delay_us: 300,
    },
    Stage {
        name: "index apply",
        begins: "applying documents to the indexes",
        ends: "indexes updated",
        max_delay_us: 2_000,
    },
    Stage {
        name: "checkpoint",
        begins: "saving a dense index checkpoint",
        ends: "dense index checkpoint saved",
        max_delay_us: 2_000,
    },
];

const SERVER_FLAGS: &[&str] = &[
    // Checkpoints every second, so that kills find saves in progress.
    "--index-checkpoint-secs",
    "1",
    // No passage is ever close enough: every Ask is answered without the
    // model, which is all the records need here.
    "--ask-min-similarity",
    "1",
];
const SERVER_LOG: &str = "info,quarry_engine=debug,quarry_index=debug";

/// splitmix64: enough randomness for seeded tests without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A made-up word: rare terms make each text its own best keyword
    /// match, and distinct texts embed far apart.
    fn word(&mut self) -> String {
        const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
        const VOWELS: &[u8] = b"aeiou";
        let syllables = 2 + self.below(3);
        (0..syllables)
            .flat_map(|_| {
                [
                    CONSONANTS[self.below(CONSONANTS.len() as u64) as usize] as char,
                    VOWELS[self.below(VOWELS.len() as u64) as usize] as char,
                ]
            })
            .collect()
    }

    fn text(&mut self) -> String {
        let words: Vec<String> = (0..18).map(|_| self.word()).collect();
        format!("{}.", words.join(" "))
    }
}

/// What the test knows about one document id.
#[derive(Debug, Default)]
struct DocState {
    /// The text of the last acknowledged write (or of what a restart found).
    known: Option<String>,
    /// Texts sent later in calls that were not acknowledged: any may be
    /// what is stored.
    in_flight: Vec<String>,
    /// Stored text not yet looked up by search.
    unsearched: bool,
}

/// A record written through Ask and rated.
#[derive(Debug)]
struct KnownRecord {
    id: String,
    question: String,
    answer: String,
    rating: i32,
}

#[derive(Default)]
struct Model {
    docs: BTreeMap<String, DocState>,
    records: Vec<KnownRecord>,
}

fn doc(id: &str, text: &str) -> proto::Document {
    proto::Document {
        id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// One BulkIngest call's documents, in batches.
fn call_batches(docs: &[(String, String)]) -> Vec<proto::BulkIngestRequest> {
    docs.chunks(BATCH)
        .enumerate()
        .map(|(i, batch)| proto::BulkIngestRequest {
            collection: if i == 0 {
                COLLECTION.into()
            } else {
                String::new()
            },
            documents: batch.iter().map(|(id, text)| doc(id, text)).collect(),
        })
        .collect()
}

/// Loads calls until one fails (the server was killed): returns the
/// acknowledged calls and the one in flight.
async fn ingest_until_killed(
    channel: Channel,
    round: u64,
    mut rng: Rng,
    rewritable: Vec<String>,
) -> (Vec<Vec<(String, String)>>, Vec<(String, String)>) {
    let mut acked = Vec::new();
    for call in 0.. {
        let mut docs: Vec<(String, String)> = (0..BATCH * BATCHES_PER_CALL - REWRITES_PER_CALL)
            .map(|i| (format!("r{round}-c{call}-d{i}"), rng.text()))
            .collect();
        for _ in 0..REWRITES_PER_CALL.min(rewritable.len()) {
            let id = &rewritable[rng.below(rewritable.len() as u64) as usize];
            if !docs.iter().any(|(d, _)| d == id) {
                docs.insert(0, (id.clone(), rng.text()));
            }
        }
        let result = DocumentsClient::new(channel.clone())
            .bulk_ingest(tokio_stream::iter(call_batches(&docs)))
            .await;
        match result {
            Ok(response) => {
                let r = response.into_inner();
                assert!(r.failed.is_empty(), "{:?}", r.failed);
                acked.push(docs);
            }
            Err(_) => return (acked, docs),
        }
    }
    unreachable!()
}

async fn get_document(channel: &Channel, id: &str) -> Option<proto::Document> {
    match DocumentsClient::new(channel.clone())
        .get_document(proto::GetDocumentRequest {
            collection: COLLECTION.into(),
            id: id.into(),
        })
        .await
    {
        Ok(d) => Some(d.into_inner()),
        Err(s) if s.code() == Code::NotFound => None,
        Err(s) => panic!("GetDocument {id}: {s}"),
    }
}

async fn search(channel: &Channel, query: &str, mode: proto::SearchMode, k: u32) -> Vec<String> {
    RetrievalClient::new(channel.clone())
        .search(proto::SearchRequest {
            collection: COLLECTION.into(),
            query: query.into(),
            top_k: k,
            mode: mode as i32,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("search {query:?}: {s}"))
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.document_id)
        .collect()
}

/// Checks everything the test knows against a restarted server and
/// settles the in-flight writes to what was found.
async fn verify(channel: &Channel, model: &mut Model) {
    let mut stored_docs = 0u64;
    let mut stored_chunks = 0u64;
    let mut gone = Vec::new();
    for (id, state) in model.docs.iter_mut() {
        match get_document(channel, id).await {
            Some(d) => {
                let acceptable = state.known.as_deref() == Some(d.text.as_str())
                    || state.in_flight.contains(&d.text);
                assert!(
                    acceptable,
                    "{id}: stored text {:?} was never sent (known {:?}, in flight {:?})",
                    d.text, state.known, state.in_flight
                );
                assert_eq!(d.chunk_count, 1, "{id}");
                if state.known.as_deref() != Some(d.text.as_str()) {
                    state.unsearched = true;
                }
                state.known = Some(d.text);
                stored_docs += 1;
                stored_chunks += u64::from(d.chunk_count);
            }
            None => {
                assert!(
                    state.known.is_none(),
                    "{id}: an acknowledged document is lost"
                );
                gone.push(id.clone());
            }
        }
        state.in_flight.clear();
    }
    for id in gone {
        model.docs.remove(&id);
    }

    let c = common::assert_index_counts_agree(channel, COLLECTION).await;
    assert_eq!(c.document_count, stored_docs, "documents");
    assert_eq!(c.chunk_count, stored_chunks, "chunks in sled");

    for (id, state) in model.docs.iter_mut().filter(|(_, s)| s.unsearched) {
        let text = state.known.as_deref().unwrap();
        for mode in [proto::SearchMode::Keyword, proto::SearchMode::Dense] {
            let hits = search(channel, text, mode, 5).await;
            if hits.first() != Some(id) {
                let raw = RetrievalClient::new(channel.clone())
                    .search(proto::SearchRequest {
                        collection: COLLECTION.into(),
                        query: text.into(),
                        top_k: 5,
                        mode: mode as i32,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let top = get_document(channel, &hits[0]).await;
                panic!(
                    "{mode:?} search for {id}'s text {text:?}: {:#?}\ntop document: {top:?}",
                    raw.hits
                );
            }
        }
        let hits = search(channel, text, proto::SearchMode::Hybrid, 10).await;
        let mut unique = hits.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), hits.len(), "a document twice: {hits:?}");
        state.unsearched = false;
    }

    for r in &model.records {
        let got = HistoryClient::new(channel.clone())
            .get_record(proto::GetRecordRequest { id: r.id.clone() })
            .await
            .unwrap_or_else(|s| panic!("record {}: {s}", r.id))
            .into_inner();
        assert_eq!(got.question, r.question);
        assert_eq!(got.answer, r.answer);
        assert_eq!(got.rating, Some(r.rating));
    }
}

/// One Ask, then a rating of its record; both acknowledged, so both must
/// survive every later kill.
async fn write_record(channel: &Channel, round: u64) -> KnownRecord {
    let question = format!("What happened in round {round} of the crash test?");
    let mut stream = RagClient::new(channel.clone())
        .ask(proto::AskRequest {
            collection: COLLECTION.into(),
            question: question.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut answer = String::new();
    let mut id = None;
    while let Some(event) = stream.message().await.unwrap() {
        match event.event.unwrap() {
            Event::Citations(_) | Event::Check(_) => {}
            Event::Delta(d) => answer.push_str(&d.text),
            Event::Done(d) => id = Some(d.record_id),
        }
    }
    let id = id.expect("a done event");
    let rating = (round % 7) as i32 - 1;
    HistoryClient::new(channel.clone())
        .rate_record(proto::RateRecordRequest {
            id: id.clone(),
            score: rating,
            ..Default::default()
        })
        .await
        .unwrap();
    KnownRecord {
        id,
        question,
        answer,
        rating,
    }
}

fn seed() -> u64 {
    std::env::var("QUARRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_in_every_stage() {
    let seed = seed();
    println!("seed {seed} (QUARRY_CRASH_SEED replays it)");
    let mut rng = Rng(seed);
    let dir = data_dir();
    let mut model = Model::default();
    let mut landed: HashMap<&str, (u32, u32)> = HashMap::new();

    {
        let server = TestServer::start_logging(dir.path(), SERVER_FLAGS, SERVER_LOG);
        CollectionsClient::new(server.channel().await)
            .create_collection(proto::CreateCollectionRequest {
                name: COLLECTION.into(),
                settings: Some(proto::CollectionSettings {
                    // Near-exact search, so that results can be compared
                    // across graph rebuilds.
                    hnsw_ef_search: Some(512),
                    ..Default::default()
                }),
                placement: None,
            })
            .await
            .unwrap();
        assert!(server.stop().success());
    }

    for round in 0..ROUNDS {
        let mut server = TestServer::start_logging(dir.path(), SERVER_FLAGS, SERVER_LOG);
        let channel = server.channel().await;
        verify(&channel, &mut model).await;
        model.records.push(write_record(&channel, round).await);

        let stage = &STAGES[(round % STAGES.len() as u64) as usize];
        let nth = 1 + rng.below(3);
        let delay = Duration::from_micros(rng.below(stage.max_delay_us));
        let rewritable: Vec<String> = model
            .docs
            .iter()
            .filter(|(_, s)| s.known.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let loader = tokio::spawn(ingest_until_killed(
            channel.clone(),
            round,
            Rng(rng.next()),
            rewritable,
        ));

        let (_, lines) = tokio::task::block_in_place(|| {
            for _ in 0..nth {
                server
                    .wait_for_log(stage.begins, Duration::from_secs(120))
                    .unwrap_or_else(|| panic!("round {round}: no {:?} line", stage.begins));
            }
            std::thread::sleep(delay);
            server.signal(libc::SIGKILL);
            server.wait_exit_with_logs()
        });
        let last_begin = lines
            .iter()
            .rposition(|l| l.contains(stage.begins))
            .unwrap();
        let inside = !lines[last_begin..].iter().any(|l| l.contains(stage.ends));
        let entry = landed.entry(stage.name).or_default();
        entry.0 += 1;
        entry.1 += u32::from(inside);
        println!(
            "round {round}: killed {delay:?} after {} #{nth}: {}",
            stage.name,
            if inside {
                "inside it"
            } else {
                "after it ended"
            }
        );

        let (acked, in_flight) = loader.await.unwrap();
        for call in acked {
            for (id, text) in call {
                let state = model.docs.entry(id).or_default();
                state.known = Some(text);
                state.in_flight.clear();
                state.unsearched = true;
            }
        }
        for (id, text) in in_flight {
            model.docs.entry(id).or_default().in_flight.push(text);
        }
    }

    // The last kill's aftermath, then a clean stop and start.
    let server = TestServer::start_logging(dir.path(), SERVER_FLAGS, SERVER_LOG);
    let channel = server.channel().await;
    verify(&channel, &mut model).await;
    assert!(server.stop().success());

    println!("stage: kills, of which inside the stage");
    for stage in &STAGES {
        let (kills, inside) = landed.get(stage.name).copied().unwrap_or_default();
        println!("  {}: {kills}, {inside}", stage.name);
        assert!(kills >= 5, "{}: {kills} kills", stage.name);
        assert!(inside >= 1, "{}: no kill landed inside it", stage.name);
    }
    println!(
        "{} documents, {} records verified after {ROUNDS} kills",
        model.docs.len(),
        model.records.len()
    );

    damaged_indexes_are_rebuilt(dir.path(), &mut model).await;
}

/// Queries whose answers must not change when the indexes are rebuilt:
/// some documents' exact texts and a few words of others.
fn probe_queries(model: &Model) -> Vec<String> {
    let texts: Vec<&String> = model
        .docs
        .values()
        .filter_map(|s| s.known.as_ref())
        .collect();
    let step = (texts.len() / 8).max(1);
    let mut queries: Vec<String> = texts.iter().step_by(step).map(|t| t.to_string()).collect();
    queries.extend(
        texts
            .iter()
            .skip(step / 2)
            .step_by(step)
            .map(|t| t.split(' ').take(3).collect::<Vec<_>>().join(" ")),
    );
    queries
}

/// Each query's best hit in every mode, which a rebuild must not change,
/// and the top five of vector search, which may differ by one (an
/// approximate graph built anew, near ties): checked by [`same_answers`].
/// Lower keyword ranks are not compared: tantivy's BM25 statistics count
/// replaced documents until their segments merge, a rebuilt index has
/// none, so scores of weak matches shift a little.
async fn answers(channel: &Channel, queries: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for q in queries {
        let dense = search(channel, q, proto::SearchMode::Dense, 5).await;
        let mut best = vec![dense[0].clone()];
        for mode in [proto::SearchMode::Keyword, proto::SearchMode::Hybrid] {
            best.push(search(channel, q, mode, 1).await.remove(0));
        }
        out.push((best, dense));
    }
    out
}

type Answers = [(Vec<String>, Vec<String>)];

fn same_answers(what: &str, before: &Answers, after: &Answers) {
    for (i, ((best_a, dense_a), (best_b, dense_b))) in before.iter().zip(after).enumerate() {
        assert_eq!(
            best_a, best_b,
            "{what}: query {i}, best hits (dense, keyword, hybrid)"
        );
        let shared = dense_a.iter().filter(|id| dense_b.contains(id)).count();
        assert!(
            shared + 1 >= dense_a.len(),
            "{what}: query {i}, vector top five {dense_a:?} became {dense_b:?}"
        );
        if dense_a != dense_b {
            println!("{what}: query {i}, vector top five {dense_a:?} became {dense_b:?}");
        }
    }
}

/// The one collection's index directory.
fn collection_index_dir(data: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data.join("indexes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

async fn damaged_indexes_are_rebuilt(data: &Path, model: &mut Model) {
    let queries = probe_queries(model);
    let server = TestServer::start_logging(data, SERVER_FLAGS, SERVER_LOG);
    let before = answers(&server.channel().await, &queries).await;
    assert!(server.stop().success());

    type Damage = fn(&Path);
    let damages: [(&str, Damage, &[&str]); 3] = [
        (
            "HNSW checkpoint truncated",
            |dir| {
                let dense = dir.join("dense");
                let current = std::fs::read_to_string(dense.join("CURRENT")).unwrap();
                let data = std::fs::read_dir(dense.join(current.trim()))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.to_string_lossy().ends_with("vectors.f32"))
                    .expect("the graph's vectors file");
                let len = std::fs::metadata(&data).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
                f.set_len(len / 2).unwrap();
            },
            &["index=dense"],
        ),
        (
            "tantivy folder deleted",
            |dir| std::fs::remove_dir_all(dir.join("keyword")).unwrap(),
            &["index=keyword"],
        ),
        (
            "both deleted",
            |dir| {
                std::fs::remove_dir_all(dir.join("dense")).unwrap();
                std::fs::remove_dir_all(dir.join("keyword")).unwrap();
            },
            &["index=dense", "index=keyword"],
        ),
    ];
    for (what, damage, rebuilt) in damages {
        damage(&collection_index_dir(data));
        let mut server = TestServer::start_logging(data, SERVER_FLAGS, SERVER_LOG);
        let channel = server.channel().await;
        let logs = server.logs();
        for index in rebuilt {
            assert!(
                logs.lines()
                    .any(|l| l.contains(index) && l.contains("rebuilt from the store")),
                "{what}: no rebuild of {index} logged:\n{logs}"
            );
        }
        for index in ["index=dense", "index=keyword"] {
            if !rebuilt.contains(&index) {
                assert!(
                    !logs
                        .lines()
                        .any(|l| l.contains(index) && l.contains("rebuilt from the store")),
                    "{what}: {index} was rebuilt though it was intact:\n{logs}"
                );
            }
        }
        verify(&channel, model).await;
        same_answers(what, &before, &answers(&channel, &queries).await);
        println!(
            "{what}: rebuilt, {} probe queries answered as before",
            before.len()
        );
        assert!(server.stop().success());
    }
}
