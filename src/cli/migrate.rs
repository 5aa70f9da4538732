//! `quarry migrate --from DATA_DIR --to-qdrant URL`: copies an embedded
//! data directory into a Qdrant cluster, collections with their stored
//! vectors (nothing is embedded again) and Ask records, then checks that
//! the counts agree.
//!
//! Resumable: documents go through the Qdrant backend's own write, which
//! skips a document whose content hash is already there, and records keep
//! their ids, so a run that was interrupted (or repeated) copies only what
//! is missing. The data directory is opened by this process alone (a
//! server on it must be stopped first) and is only read.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use quarry_core::{NewChunk, NewDocument, Placement, UpsertStatus};
use quarry_engine::storage::Storage;
use quarry_engine::ErrorKind;
use quarry_qdrant::{QdrantConfig, QdrantStorage};
use quarry_store::{RecordKey, Store};

/// Flags of `quarry migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The embedded data directory to copy (its server stopped).
    #[arg(long)]
    pub from: PathBuf,
    /// gRPC URL(s) of the Qdrant cluster, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub to_qdrant: Vec<String>,
    /// The cluster's API key (prefer the environment variable).
    #[arg(long, env = "QUARRY_QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Prefix of the deployment's Qdrant collections (as the servers'
    /// --qdrant-prefix).
    #[arg(long, env = "QUARRY_QDRANT_PREFIX", default_value = "quarry")]
    pub qdrant_prefix: String,
    /// The records key of the data directory, if its records are
    /// encrypted (the servers on Qdrant need the same key).
    #[arg(long, env = "QUARRY_RECORD_KEY_FILE")]
    pub record_key_file: Option<PathBuf>,
    /// Documents per write.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Shards of each new collection (default: one per Qdrant node).
    #[arg(long)]
    pub shard_number: Option<u32>,
    /// Copies of each shard of a new collection.
    #[arg(long)]
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write to a new collection.
    #[arg(long)]
    pub write_consistency_factor: Option<u32>,
}

/// The dimension a collection gets when the data directory holds no
/// vector at all (the default embedder's).
const DEFAULT_DIMENSION: usize = 384;

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{per_sec}} eta {{eta}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

fn record_key(args: &MigrateArgs) -> anyhow::Result<Option<RecordKey>> {
    let text = match (
        &args.record_key_file,
        std::env::var("QUARRY_RECORD_KEY").ok(),
    ) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the records key {}", path.display()))?,
        (None, Some(text)) if !text.is_empty() => text,
        _ => return Ok(None),
    };
    Ok(Some(
        RecordKey::from_hex(&text).map_err(anyhow::Error::msg)?,
    ))
}

/// Runs `quarry migrate`.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let placement = Placement {
        shard_number: args.shard_number,
        replication_factor: args.replication_factor,
        write_consistency_factor: args.write_consistency_factor,
    };
    placement.validate().map_err(|e| {
        anyhow::anyhow!(
            "--{}: {}",
            e.field.replace("placement.", "").replace('_', "-"),
            e.reason
        )
    })?;
    let key = record_key(&args)?;
    let store_dir = args.from.join("store");
    if !store_dir.is_dir() {
        bail!(
            "{} is not a Quarry data directory (no store/ in it)",
            args.from.display()
        );
    }
    let store = Store::open_with(&store_dir, key.clone()).with_context(|| {
        format!(
            "cannot open {} (is a server still running on it?)",
            store_dir.display()
        )
    })?;
    let collections = store.list_collections()?;
    let dimension = collections
        .iter()
        .find_map(|c| store.vectors(c.id).next())
        .transpose()?
        .map_or(DEFAULT_DIMENSION, |(_, v)| v.len());
    let mut config = QdrantConfig::new(args.to_qdrant.clone());
    config.api_key = args.qdrant_api_key.clone();
    config.prefix = args.qdrant_prefix.clone();
    let qdrant = Arc::new(QdrantStorage::connect(&config, dimension, key)?);
    eprintln!(
        "migrating {} ({} collections, {} records) to Qdrant at {} (prefix {:?})",
        args.from.display(),
        collections.len(),
        store.record_count(),
        args.to_qdrant.join(", "),
        args.qdrant_prefix
    );

    let mut problems = Vec::new();
    for c in &collections {
        match qdrant.create_collection(&c.name, c.settings, placement) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let there = qdrant.collection(&c.name)?;
                if *there.settings() != c.settings {
                    bail!(
                        "collection {:?} exists in Qdrant with other settings ({:?}, here {:?}); delete it there or use another --qdrant-prefix",
                        c.name.as_str(),
                        there.settings(),
                        c.settings
                    );
                }
                eprintln!("{}: exists in Qdrant, resuming", c.name);
            }
            Err(e) => return Err(e.into()),
        }
        let target = qdrant.collection(&c.name)?;
        let progress = bar(c.document_count, &format!("{:<16}", c.name.as_str()));
        let (mut added, mut kept) = (0u64, 0u64);
        let mut batch = Vec::with_capacity(args.batch.max(1));
        let mut flush = |batch: &mut Vec<NewDocument>| -> anyhow::Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let n = batch.len() as u64;
            let written = target.write(std::mem::take(batch))?;
            for s in written.statuses {
                if s == UpsertStatus::Unchanged {
                    kept += 1;
                } else {
                    added += 1;
                }
            }
            progress.inc(n);
            Ok(())
        };
        for doc in store.documents(c.id) {
            let doc = doc?;
            let mut chunks = Vec::with_capacity(doc.chunk_ids.len());
            for &id in &doc.chunk_ids {
                let chunk = store.chunk(c.id, id)?.with_context(|| {
                    format!("{}: chunk {id} of {:?} is missing", c.name, doc.document.id)
                })?;
                let vector = store
                    .vector(c.id, id)?
                    .with_context(|| format!("{}: the vector of chunk {id} is missing", c.name))?;
                chunks.push((
                    chunk.index,
                    NewChunk {
                        text: chunk.text,
                        vector,
                    },
                ));
            }
            chunks.sort_by_key(|(i, _)| *i);
            batch.push(NewDocument {
                document: doc.document,
                content_hash: doc.content_hash,
                chunks: chunks.into_iter().map(|(_, c)| c).collect(),
            });
            if batch.len() >= args.batch.max(1) {
                flush(&mut batch)?;
            }
        }
        flush(&mut batch)?;
        progress.finish_and_clear();
        let info = target.info()?;
        let ok = info.document_count == c.document_count && info.chunk_count == c.chunk_count;
        eprintln!(
            "{}: {} documents copied, {} already there; Qdrant holds {} documents and {} chunks, the data directory {} and {} {}",
            c.name,
            added,
            kept,
            info.document_count,
            info.chunk_count,
            c.document_count,
            c.chunk_count,
            if ok { "(equal)" } else { "(DIFFERENT)" }
        );
        if !ok {
            problems.push(format!("collection {}", c.name));
        }
    }

    let records = qdrant.qdrant_records();
    let total = store.record_count() as u64;
    let progress = bar(total, "records         ");
    for r in store.records_oldest_first() {
        records.restore(&r?)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let there = records.count_all()?;
    eprintln!(
        "records: {total} in the data directory, {there} in Qdrant {}",
        if there >= total {
            "(all copied)"
        } else {
            "(MISSING)"
        }
    );
    if there < total {
        problems.push("records".into());
    }
    if !problems.is_empty() {
        bail!("counts differ after the copy: {}", problems.join(", "));
    }
    println!(
        "migrated {} collections and {total} records; counts verified",
        collections.len()
    );
    Ok(())
}
