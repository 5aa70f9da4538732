//! `quarry search QUERY --collection C`: ranked passages from a running
//! server.

use quarry::proto::{self, retrieval_client::RetrievalClient};
use serde_json::json;

use super::{call_failed, filter_arg, ClientArgs};

/// Retrieval mode on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Dense and keyword, fused.
    Hybrid,
    /// Dense vectors only.
    Dense,
    /// BM25 only.
    Keyword,
}

impl From<ModeArg> for proto::SearchMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Hybrid => Self::Hybrid,
            ModeArg::Dense => Self::Dense,
            ModeArg::Keyword => Self::Keyword,
        }
    }
}

/// Flags of `quarry search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The query.
    pub query: String,
    /// The collection to search.
    #[arg(long, short)]
    pub collection: String,
    /// Retrieval mode.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeArg,
    /// Hits to return (1-100).
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Metadata filter as JSON, e.g. '{"equals":{"key":"lang","value":{"string":"en"}}}'
    /// or '{"and":[{"range":{"key":"year","gte":2020}}, ...]}'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Rescore the best 20 hits by their best sentence at this weight
    /// (0..=1; 0 is off; docs/retrieval.md).
    #[arg(long)]
    pub sentence_weight: Option<f32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `quarry search`.
pub async fn run(args: SearchArgs) -> anyhow::Result<()> {
    let filter = args.filter.as_deref().map(filter_arg).transpose()?;
    let mut rpc = RetrievalClient::new(args.client.connect().await?)
        .max_decoding_message_size(args.client.max_message_bytes());
    let reply = rpc
        .search(proto::SearchRequest {
            collection: args.collection,
            query: args.query,
            top_k: args.top_k,
            mode: proto::SearchMode::from(args.mode) as i32,
            filter,
            sentence_weight: args.sentence_weight,
            ..Default::default()
        })
        .await
        .map_err(call_failed)?
        .into_inner();
    if args.client.json {
        let hits: Vec<_> = reply
            .hits
            .iter()
            .map(|h| {
                json!({
                    "chunk_id": h.chunk_id,
                    "document_id": h.document_id,
                    "title": h.title,
                    "text": h.text,
                    "score": h.score,
                    "dense_rank": h.dense_rank,
                    "dense_score": h.dense_score,
                    "keyword_rank": h.keyword_rank,
                    "keyword_score": h.keyword_score,
                })
            })
            .collect();
        println!("{}", json!({ "took_ms": reply.took_ms, "hits": hits }));
    } else if reply.hits.is_empty() {
        println!("no hits ({:.1} ms)", reply.took_ms);
    } else {
        for (i, h) in reply.hits.iter().enumerate() {
            let snippet: String = h.text.chars().take(160).collect();
            let title = if h.title.is_empty() {
                String::new()
            } else {
                format!(" {}", h.title)
            };
            println!("{:>2}. [{:.4}] {}{}", i + 1, h.score, h.document_id, title);
            println!(
                "    {}{}",
                snippet,
                if h.text.chars().count() > 160 {
                    "..."
                } else {
                    ""
                }
            );
        }
        println!("({} hits, {:.1} ms)", reply.hits.len(), reply.took_ms);
    }
    Ok(())
}
