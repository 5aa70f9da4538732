//! `quarry collections create|get|list|delete`.

use quarry::proto::{self, collections_client::CollectionsClient};
use serde_json::json;

use super::{call_failed, format_time, ClientArgs};

/// Collection management.
#[derive(Debug, clap::Subcommand)]
pub enum CollectionsCommand {
    /// Create a collection.
    Create {
        /// Name: 1-64 characters of A-Z, a-z, 0-9, '_' and '-'.
        name: String,
        /// Target chunk length in embedder tokens (16-2048). [default: 256]
        #[arg(long)]
        chunk_size: Option<u32>,
        /// Tokens shared by consecutive chunks (less than half the chunk
        /// size). [default: 32]
        #[arg(long)]
        chunk_overlap: Option<u32>,
        /// HNSW links per node (4-64). [default: 16]
        #[arg(long)]
        hnsw_m: Option<u32>,
        /// HNSW build-time candidate list (16-2000). [default: 200]
        #[arg(long)]
        hnsw_ef_construction: Option<u32>,
        /// HNSW search-time candidate list (8-4096). [default: 64]
        #[arg(long)]
        hnsw_ef_search: Option<u32>,
        /// The language of its text, for keyword search: ar, da, nl, en,
        /// fi, fr, de, el, hu, it, no, pt, ro, ru, es, sv, ta, tr, simple
        /// or cjk. Fixed once created. [default: en]
        #[arg(long)]
        language: Option<String>,
        /// How the vector index holds vectors: none (32-bit floats) or
        /// int8 (searched as one byte per dimension, a quarter of the
        /// floats' bytes; candidates rescored with the floats, kept on
        /// disk). Fixed once created. [default: none]
        #[arg(long)]
        quantization: Option<String>,
        /// Qdrant backend: shards of the collection (1-1024). [default: one
        /// per Qdrant node]
        #[arg(long)]
        shard_number: Option<u32>,
        /// Qdrant backend: copies of each shard (1-16); 2 keeps it readable
        /// and writable with a node down. [default: 1]
        #[arg(long)]
        replication_factor: Option<u32>,
        /// Qdrant backend: replicas that must acknowledge a write
        /// (1-replication factor). [default: 1]
        #[arg(long)]
        write_consistency_factor: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one collection with its counts.
    Get {
        /// The collection's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List every collection.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a collection and all of its documents.
    Delete {
        /// The collection's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn to_json(c: &proto::Collection) -> serde_json::Value {
    let s = c.settings.clone().unwrap_or_default();
    json!({
        "name": c.name,
        "document_count": c.document_count,
        "chunk_count": c.chunk_count,
        "dense_indexed_chunks": c.dense_indexed_chunks,
        "keyword_indexed_chunks": c.keyword_indexed_chunks,
        "created_at_ms": c.created_at_ms,
        "settings": {
            "chunk_size": s.chunk_size,
            "chunk_overlap": s.chunk_overlap,
            "hnsw_m": s.hnsw_m,
            "hnsw_ef_construction": s.hnsw_ef_construction,
            "hnsw_ef_search": s.hnsw_ef_search,
            "language": s.language,
            "quantization": s.quantization,
        },
        "placement": c.placement.map(|p| json!({
            "shard_number": p.shard_number,
            "replication_factor": p.replication_factor,
            "write_consistency_factor": p.write_consistency_factor,
        })),
        "note": c.note,
    })
}

fn print_details(c: &proto::Collection) {
    let s = c.settings.clone().unwrap_or_default();
    let n = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    println!("name:        {}", c.name);
    println!("documents:   {}", c.document_count);
    println!("chunks:      {}", c.chunk_count);
    println!(
        "indexed:     {} in HNSW, {} in BM25",
        c.dense_indexed_chunks, c.keyword_indexed_chunks
    );
    println!("created:     {}", format_time(c.created_at_ms));
    println!(
        "chunking:    {} tokens, {} overlap",
        n(s.chunk_size),
        n(s.chunk_overlap)
    );
    println!(
        "hnsw:        m {}, ef_construction {}, ef_search {}",
        n(s.hnsw_m),
        n(s.hnsw_ef_construction),
        n(s.hnsw_ef_search)
    );
    println!("language:    {}", s.language.as_deref().unwrap_or("-"));
    println!(
        "vectors:     {}",
        match s.quantization.as_deref() {
            Some("int8") => "int8 codes in memory, floats on disk for rescoring",
            Some(_) => "32-bit floats",
            None => "-",
        }
    );
    if let Some(p) = c.placement {
        println!(
            "placement:   {} shards x {} replicas, {} to acknowledge a write (Qdrant)",
            n(p.shard_number),
            n(p.replication_factor),
            n(p.write_consistency_factor)
        );
    }
    if !c.note.is_empty() {
        println!("note:        {}", c.note);
    }
}

/// Runs a collections subcommand.
pub async fn run(cmd: CollectionsCommand) -> anyhow::Result<()> {
    match cmd {
        CollectionsCommand::Create {
            name,
            chunk_size,
            chunk_overlap,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            language,
            quantization,
            shard_number,
            replication_factor,
            write_consistency_factor,
            client,
        } => {
            let mut rpc = CollectionsClient::new(client.connect().await?);
            let placement = (shard_number.is_some()
                || replication_factor.is_some()
                || write_consistency_factor.is_some())
            .then_some(proto::Placement {
                shard_number,
                replication_factor,
                write_consistency_factor,
            });
            let created = rpc
                .create_collection(proto::CreateCollectionRequest {
                    name,
                    settings: Some(proto::CollectionSettings {
                        chunk_size,
                        chunk_overlap,
                        hnsw_m,
                        hnsw_ef_construction,
                        hnsw_ef_search,
                        language,
                        quantization,
                    }),
                    placement,
                })
                .await
                .map_err(call_failed)?
                .into_inner();
            if client.json {
                println!("{}", to_json(&created));
            } else {
                println!("created collection {}", created.name);
                print_details(&created);
            }
        }
        CollectionsCommand::Get { name, client } => {
            let mut rpc = CollectionsClient::new(client.connect().await?);
            let c = rpc
                .get_collection(proto::GetCollectionRequest { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            if client.json {
                println!("{}", to_json(&c));
            } else {
                print_details(&c);
            }
        }
        CollectionsCommand::List { client } => {
            let mut rpc = CollectionsClient::new(client.connect().await?);
            let list = rpc
                .list_collections(proto::ListCollectionsRequest {})
                .await
                .map_err(call_failed)?
                .into_inner()
                .collections;
            if client.json {
                let items: Vec<_> = list.iter().map(to_json).collect();
                println!("{}", json!({ "collections": items }));
            } else if list.is_empty() {
                println!("no collections (create one with `quarry collections create NAME`)");
            } else {
                let width = list.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
                println!(
                    "{:<width$}  {:>10}  {:>10}  CREATED",
                    "NAME", "DOCUMENTS", "CHUNKS"
                );
                for c in &list {
                    println!(
                        "{:<width$}  {:>10}  {:>10}  {}",
                        c.name,
                        c.document_count,
                        c.chunk_count,
                        format_time(c.created_at_ms)
                    );
                }
            }
        }
        CollectionsCommand::Delete { name, client } => {
            let mut rpc = CollectionsClient::new(client.connect().await?);
            let d = rpc
                .delete_collection(proto::DeleteCollectionRequest { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            if client.json {
                println!(
                    "{}",
                    json!({
                        "name": d.name,
                        "documents_deleted": d.documents_deleted,
                        "chunks_deleted": d.chunks_deleted,
                    })
                );
            } else {
                println!(
                    "deleted collection {} ({} documents, {} chunks)",
                    d.name, d.documents_deleted, d.chunks_deleted
                );
            }
        }
    }
    Ok(())
}
