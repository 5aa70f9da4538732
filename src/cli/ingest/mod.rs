//! `quarry ingest PATH... --collection C`: loads files into a running
//! server through `Documents.BulkIngest`.
//!
//! A reader thread parses the inputs ([`sources`]) while the server embeds
//! what was sent before; batches pass through a bounded channel, so a
//! slow server makes the reader wait (memory stays flat) instead of
//! buffering. Bad records are reported with `file:line` and skipped
//! (`--strict` stops at the first); the server loads each document whole
//! or not at all, so an interrupted load re-run finishes the job, and
//! unchanged documents cost no embedding.

mod sources;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use quarry::proto::{self, documents_client::DocumentsClient};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::{call_failed, ClientArgs};
use sources::{Fields, Record};

/// Flags of `quarry ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Files and folders: .jsonl/.ndjson (one document per line; BEIR
    /// corpus.jsonl works as is), .txt, .md, .html (one document per
    /// file, id = path relative to the named folder); any of them .gz.
    /// Folders are walked recursively.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The collection to load into.
    #[arg(long, short)]
    pub collection: String,
    /// Create the collection first if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// JSON field holding the document id ("_id" is tried when "id" is
    /// missing).
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// JSON field holding the title.
    #[arg(long, default_value = "title")]
    pub title_field: String,
    /// JSON field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// JSON field holding the metadata object.
    #[arg(long, default_value = "metadata")]
    pub metadata_field: String,
    /// Documents per message: large enough that the embedder sorts many
    /// texts by length (less padding).
    #[arg(long, default_value_t = 256)]
    pub batch_docs: usize,
    /// Bytes of text per message, at most (stays under the 16 MiB message
    /// limit).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub batch_bytes: usize,
    /// Stop at the first bad record instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl IngestArgs {
    /// Loading `paths` into `collection` (created when missing) with the
    /// default field names and batch sizes: for other commands that load a
    /// corpus first.
    pub fn for_collection(paths: Vec<PathBuf>, collection: &str, client: ClientArgs) -> Self {
        Self {
            paths,
            collection: collection.to_owned(),
            create: true,
            id_field: "id".into(),
            title_field: "title".into(),
            text_field: "text".into(),
            metadata_field: "metadata".into(),
            batch_docs: 256,
            batch_bytes: 4 * 1024 * 1024,
            strict: false,
            client,
        }
    }
}

/// Messages waiting for the server before the reader waits.
const QUEUED_BATCHES: usize = 2;

/// Progress on a terminal (a bar) or in a log (a line every few seconds).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// The collection's (documents, chunks) as the server last reported
    /// them, and at the start: stored work, not just sent work.
    stored: tokio::sync::watch::Receiver<(u64, u64)>,
    stored_at_start: (u64, u64),
    started: Instant,
    last_line: Instant,
    docs: u64,
    bytes: u64,
    total_bytes: u64,
    quiet: bool,
}

impl Progress {
    fn new(
        total_bytes: u64,
        quiet: bool,
        stored: tokio::sync::watch::Receiver<(u64, u64)>,
    ) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} · {msg} · ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar
        });
        let stored_at_start = *stored.borrow();
        Self {
            bar,
            stored,
            stored_at_start,
            started: Instant::now(),
            last_line: Instant::now(),
            docs: 0,
            bytes: 0,
            total_bytes,
            quiet,
        }
    }

    fn message(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let (docs, chunks) = *self.stored.borrow();
        let (docs0, chunks0) = self.stored_at_start;
        let (new_docs, new_chunks) = (docs.saturating_sub(docs0), chunks.saturating_sub(chunks0));
        format!(
            "{} sent · {new_docs} new documents ({:.0}/s), {new_chunks} new chunks ({:.0}/s) stored",
            self.docs,
            new_docs as f64 / secs,
            new_chunks as f64 / secs
        )
    }

    fn sent(&mut self, docs: u64, bytes: u64) {
        self.docs += docs;
        self.bytes += bytes;
        let msg = self.message();
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes.min(self.total_bytes));
            bar.set_message(msg);
        } else if !self.quiet && self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            eprintln!(
                "ingest: {msg}, {:.0}% of the input",
                100.0 * self.bytes as f64 / self.total_bytes.max(1) as f64
            );
        }
    }

    fn warn(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What the reader thread sends: a message, or a record it could not read.
enum Item {
    Batch(proto::BulkIngestRequest, Vec<String>, u64),
    Bad(String, String),
}

/// What a load did.
pub struct Report {
    /// The server's summary.
    pub reply: proto::BulkIngestResponse,
    /// Records the reader could not use: (place, reason).
    pub bad: Vec<(String, String)>,
    /// Documents the server refused: (place, id, reason).
    pub refused: Vec<(String, String, String)>,
    /// Wall time of the load.
    pub seconds: f64,
}

/// Runs `quarry ingest`.
pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let json_out = args.client.json;
    let collection = args.collection.clone();
    let Report {
        reply,
        bad,
        refused,
        seconds,
    } = load(args).await?;
    let loaded = reply.added + reply.updated + reply.unchanged;
    if json_out {
        let value = json!({
            "collection": collection,
            "added": reply.added,
            "updated": reply.updated,
            "unchanged": reply.unchanged,
            "failed": refused.len() + bad.len(),
            "failures": bad.iter().map(|(at, reason)| json!({"at": at, "reason": reason}))
                .chain(refused.iter().map(|(at, id, reason)| json!({"at": at, "document_id": id, "reason": reason})))
                .collect::<Vec<_>>(),
            "chunks_written": reply.chunks_written,
            "chunks_embedded": reply.chunks_embedded,
            "seconds": seconds,
            "documents_per_second": loaded as f64 / seconds.max(1e-3),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for (at, id, reason) in &refused {
        eprintln!("{at}: {id:?} not loaded: {reason}");
    }
    println!(
        "{collection}: {} added, {} updated, {} unchanged, {} failed; {} chunks written ({} embedded) in {seconds:.1} s ({:.0} documents/s)",
        reply.added,
        reply.updated,
        reply.unchanged,
        refused.len() + bad.len(),
        reply.chunks_written,
        reply.chunks_embedded,
        loaded as f64 / seconds.max(1e-3)
    );
    Ok(())
}

/// Loads the inputs; the report says what happened (progress and bad
/// records go to standard error as they happen).
pub async fn load(args: IngestArgs) -> anyhow::Result<Report> {
    let inputs = sources::inputs(&args.paths)?;
    anyhow::ensure!(!inputs.is_empty(), "no files to load under the given paths");
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let channel = args.client.connect().await?;
    let mut client = DocumentsClient::new(channel.clone())
        .max_decoding_message_size(args.client.max_message_bytes())
        .max_encoding_message_size(args.client.max_message_bytes());
    if args.create {
        let mut collections = proto::collections_client::CollectionsClient::new(channel.clone());
        match collections
            .create_collection(proto::CreateCollectionRequest {
                name: args.collection.clone(),
                settings: None,
                placement: None,
            })
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::AlreadyExists => {}
            Err(s) => return Err(call_failed(s)),
        }
    }

    let fields = Fields {
        id: args.id_field.clone(),
        title: args.title_field.clone(),
        text: args.text_field.clone(),
        metadata: args.metadata_field.clone(),
    };
    let (items_tx, mut items_rx) = tokio::sync::mpsc::channel::<Item>(QUEUED_BATCHES);
    let (batch_docs, batch_bytes) = (args.batch_docs.max(1), args.batch_bytes.max(1024));
    let collection = args.collection.clone();
    let strict = args.strict;
    let reader = std::thread::Builder::new()
        .name("quarry-ingest-reader".into())
        .spawn(move || {
            let mut docs = Vec::new();
            let mut places = Vec::new();
            let (mut size, mut input_bytes) = (0usize, 0u64);
            let flush = |docs: &mut Vec<proto::Document>,
                         places: &mut Vec<String>,
                         input_bytes: &mut u64|
             -> bool {
                if docs.is_empty() {
                    return true;
                }
                let message = proto::BulkIngestRequest {
                    // The collection goes in every message: it is cheap,
                    // and the server checks they agree.
                    collection: collection.clone(),
                    documents: std::mem::take(docs),
                };
                let item = Item::Batch(message, std::mem::take(places), *input_bytes);
                *input_bytes = 0;
                items_tx.blocking_send(item).is_ok()
            };
            sources::read_all(&inputs, &fields, &mut |record| match record {
                Record::Doc { doc, at, bytes } => {
                    size += doc.text.len() + doc.title.len();
                    input_bytes += bytes;
                    docs.push(doc);
                    places.push(at);
                    if docs.len() >= batch_docs || size >= batch_bytes {
                        size = 0;
                        return flush(&mut docs, &mut places, &mut input_bytes);
                    }
                    true
                }
                Record::Bad { at, reason } => {
                    let keep_going = items_tx.blocking_send(Item::Bad(at, reason)).is_ok();
                    keep_going && !strict
                }
            });
            flush(&mut docs, &mut places, &mut input_bytes);
        })
        .context("cannot start the reader thread")?;

    let json_out = args.client.json;
    // The server's counts, polled: progress shows what is stored.
    let (stored_tx, stored_rx) = tokio::sync::watch::channel((0u64, 0u64));
    let mut collections = proto::collections_client::CollectionsClient::new(channel.clone());
    let name = args.collection.clone();
    let counts = |c: proto::Collection| (c.document_count, c.chunk_count);
    if let Ok(c) = collections
        .get_collection(proto::GetCollectionRequest { name: name.clone() })
        .await
    {
        let _ = stored_tx.send(counts(c.into_inner()));
    }
    let poller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(c) = collections
                .get_collection(proto::GetCollectionRequest { name: name.clone() })
                .await
            {
                if stored_tx.send(counts(c.into_inner())).is_err() {
                    return;
                }
            }
        }
    });
    let mut progress = Progress::new(total_bytes, json_out, stored_rx);
    let (requests_tx, requests_rx) = tokio::sync::mpsc::channel(1);
    let mut call = tokio::spawn(async move {
        client
            .bulk_ingest(ReceiverStream::new(requests_rx))
            .await
            .map(|r| r.into_inner())
    });
    // Progress moves with the server's counts, not only with sends.
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut places: HashMap<String, String> = HashMap::new();
    let mut bad: Vec<(String, String)> = Vec::new();
    loop {
        let item = tokio::select! {
            item = items_rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            _ = ticker.tick() => {
                progress.sent(0, 0);
                continue;
            }
        };
        match item {
            Item::Batch(message, at, bytes) => {
                let n = message.documents.len() as u64;
                for (doc, place) in message.documents.iter().zip(at) {
                    places.insert(doc.id.clone(), place);
                }
                if requests_tx.send(message).await.is_err() {
                    // The call ended early: its status says why, below.
                    break;
                }
                progress.sent(n, bytes);
            }
            Item::Bad(at, reason) => {
                progress.warn(&format!("{at}: skipped: {reason}"));
                bad.push((at, reason));
                if strict {
                    break;
                }
            }
        }
    }
    drop(items_rx);
    drop(requests_tx);
    let reply = loop {
        tokio::select! {
            reply = &mut call => break reply?,
            _ = ticker.tick() => progress.sent(0, 0),
        }
    };
    poller.abort();
    let _ = reader.join();
    progress.finish();
    if strict {
        if let Some((at, reason)) = bad.first() {
            let sent = reply
                .as_ref()
                .map_or(0, |r| r.added + r.updated + r.unchanged);
            anyhow::bail!(
                "{at}: {reason} (--strict: stopped at this record; {sent} documents before it were loaded)"
            );
        }
    }
    let reply = reply.map_err(call_failed)?;
    let seconds = progress.started.elapsed().as_secs_f64();
    let refused = reply
        .failed
        .iter()
        .map(|f| {
            let at = places.get(&f.document_id).cloned().unwrap_or_default();
            (at, f.document_id.clone(), f.reason.clone())
        })
        .collect();
    Ok(Report {
        reply,
        bad,
        refused,
        seconds,
    })
}
