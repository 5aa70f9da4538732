//! `quarry ask QUESTION --collection C`: streams a grounded answer to the
//! terminal as it is generated, then lists the numbered sources.

use std::io::Write;

use quarry::proto::{self, ask_event::Event, rag_client::RagClient};
use serde_json::json;

use super::search::ModeArg;
use super::{call_failed, filter_arg, ClientArgs};

/// Flags of `quarry ask`.
#[derive(Debug, clap::Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The collection to answer from.
    #[arg(long, short)]
    pub collection: String,
    /// A conversation id: earlier questions and answers of the same
    /// session are part of the prompt.
    #[arg(long)]
    pub session: Option<String>,
    /// Passages to retrieve (0: the server's default).
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    /// Retrieval mode.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeArg,
    /// Metadata filter as JSON (as for `quarry search`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Most tokens to generate (default: the server's).
    #[arg(long)]
    pub max_new_tokens: Option<u32>,
    /// Sampling temperature (0: greedy, the default).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Sampling seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Penalty on recently generated tokens (1: off, up to 2).
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Print the timings (retrieval, prefill, first token, total).
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `quarry ask`.
pub async fn run(args: AskArgs) -> anyhow::Result<()> {
    let filter = args.filter.as_deref().map(filter_arg).transpose()?;
    let mut rpc = RagClient::new(args.client.connect().await?)
        .max_decoding_message_size(args.client.max_message_bytes());
    let mut stream = rpc
        .ask(proto::AskRequest {
            collection: args.collection,
            question: args.question,
            session_id: args.session.unwrap_or_default(),
            top_k: args.top_k,
            filter,
            mode: proto::SearchMode::from(args.mode) as i32,
            generation: Some(proto::GenerationParams {
                max_new_tokens: args.max_new_tokens,
                temperature: args.temperature,
                seed: args.seed,
                repetition_penalty: args.repetition_penalty,
                ..Default::default()
            }),
        })
        .await
        .map_err(call_failed)?
        .into_inner();
    let json = args.client.json;
    let mut citations = Vec::new();
    let mut answer = String::new();
    let mut done = None;
    let mut out = std::io::stdout();
    while let Some(event) = stream.message().await.map_err(call_failed)? {
        match event.event {
            Some(Event::Citations(c)) => citations = c.citations,
            Some(Event::Delta(d)) => {
                if !json {
                    out.write_all(d.text.as_bytes())?;
                    out.flush()?;
                }
                answer.push_str(&d.text);
            }
            Some(Event::Done(d)) => done = Some(d),
            None => {}
        }
    }
    let done =
        done.ok_or_else(|| anyhow::anyhow!("the answer stream ended without its final event"))?;
    let reason = proto::FinishReason::try_from(done.finish_reason)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("FINISH_REASON_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let timings = done.timings.unwrap_or_default();
    if json {
        let value = json!({
            "answer": answer,
            "record_id": done.record_id,
            "finish_reason": reason,
            "prompt_tokens": done.prompt_tokens,
            "answer_tokens": done.answer_tokens,
            "model": done.model,
            "citations": citations.iter().map(|c| json!({
                "number": c.number, "chunk_id": c.chunk_id, "document_id": c.document_id,
                "title": c.title, "score": c.score, "snippet": c.snippet,
            })).collect::<Vec<_>>(),
            "used_citations": done.used_citations.iter().map(|c| c.number).collect::<Vec<_>>(),
            "timings_ms": {
                "retrieve": timings.retrieve_ms, "prefill": timings.prefill_ms,
                "first_token": timings.first_token_ms, "total": timings.total_ms,
            },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!();
    if !citations.is_empty() {
        println!("\nSources:");
        for c in &citations {
            let used = if done.used_citations.iter().any(|u| u.number == c.number) {
                " (cited)"
            } else {
                ""
            };
            let title = if c.title.is_empty() {
                &c.document_id
            } else {
                &c.title
            };
            println!("  [{}] {} ({}){used}", c.number, title, c.document_id);
        }
    }
    println!(
        "\nrecord {} · {reason} · {} prompt + {} answer tokens",
        done.record_id, done.prompt_tokens, done.answer_tokens
    );
    if args.timings {
        println!(
            "retrieve {:.0} ms · prefill {:.0} ms · first token {:.0} ms · total {:.0} ms",
            timings.retrieve_ms, timings.prefill_ms, timings.first_token_ms, timings.total_ms
        );
    }
    Ok(())
}
