//! `quarry embed TEXT...`: vectors from the server's sentence embedder.

use quarry::proto::{self, retrieval_client::RetrievalClient};
use serde_json::json;

use super::{call_failed, ClientArgs};

/// Flags of `quarry embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Texts to embed.
    #[arg(required = true)]
    pub texts: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `quarry embed`.
pub async fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let mut rpc = RetrievalClient::new(args.client.connect().await?)
        .max_decoding_message_size(args.client.max_message_bytes());
    let reply = rpc
        .embed(proto::EmbedRequest {
            texts: args.texts.clone(),
        })
        .await
        .map_err(call_failed)?
        .into_inner();
    if args.client.json {
        let vectors: Vec<_> = reply.embeddings.iter().map(|e| &e.values).collect();
        println!(
            "{}",
            json!({ "model": reply.model, "dimension": reply.dimension, "embeddings": vectors })
        );
    } else {
        println!("model {} ({} dimensions)", reply.model, reply.dimension);
        for (text, e) in args.texts.iter().zip(&reply.embeddings) {
            let head: Vec<String> = e
                .values
                .iter()
                .take(6)
                .map(|v| format!("{v:+.4}"))
                .collect();
            println!("{text:?}: [{}, ...]", head.join(", "));
        }
    }
    Ok(())
}
