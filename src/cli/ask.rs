//! `quarry ask QUESTION --collection C`: streams a grounded answer to the
//! terminal as it is generated, then lists the numbered sources.

use std::io::Write;

use quarry::proto::{self, ask_event::Event, rag_client::RagClient};
use serde_json::json;

use super::search::ModeArg;
use super::{call_failed, filter_arg, ClientArgs};

/// Answer modes, as the command line takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnswerModeArg {
    /// The model answers from evidence; every sentence verified.
    Grounded,
    /// The best evidence sentences, quoted; no model.
    Extractive,
    /// Free generation, verified and annotated.
    Generative,
}

impl From<AnswerModeArg> for proto::AnswerMode {
    fn from(m: AnswerModeArg) -> Self {
        match m {
            AnswerModeArg::Grounded => Self::Grounded,
            AnswerModeArg::Extractive => Self::Extractive,
            AnswerModeArg::Generative => Self::Generative,
        }
    }
}

/// The lower-case name of an answer mode on the wire (0 reads as
/// grounded, the server's default).
pub fn answer_mode_name(m: i32) -> String {
    match proto::AnswerMode::try_from(m) {
        Ok(proto::AnswerMode::Unspecified) => "grounded".into(),
        Ok(m) => m
            .as_str_name()
            .trim_start_matches("ANSWER_MODE_")
            .to_lowercase(),
        Err(_) => format!("mode {m}"),
    }
}

/// The lower-case name of a sentence status.
pub fn status_name(s: i32) -> String {
    proto::SentenceStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("SENTENCE_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

/// A sentence check as JSON.
pub fn check_json(c: &proto::SentenceCheck) -> serde_json::Value {
    json!({
        "index": c.index, "generated": c.generated, "shown": c.shown,
        "status": status_name(c.status), "citations": c.citations,
        "written_citations": c.written_citations, "support": c.support,
        "passage": c.passage, "unsupported_facts": c.unsupported_facts,
    })
}

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
    /// How the answer is built: grounded (the model answers from evidence
    /// sentences, every sentence verified before it is shown), extractive
    /// (the best evidence quoted, no model), or generative (free
    /// generation, annotated).
    #[arg(long, value_enum, default_value = "grounded")]
    pub answer_mode: AnswerModeArg,
    /// Print the timings (retrieval, prefill, first token, total).
    #[arg(long)]
    pub timings: bool,
    /// Print each sentence's verification after the answer.
    #[arg(long)]
    pub verification: bool,
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
            answer_mode: proto::AnswerMode::from(args.answer_mode) as i32,
            history: Vec::new(),
        })
        .await
        .map_err(call_failed)?
        .into_inner();
    let json = args.client.json;
    let mut citations = Vec::new();
    let mut answer = String::new();
    let mut done = None;
    let mut checks = Vec::new();
    let mut out = std::io::stdout();
    while let Some(event) = stream.message().await.map_err(call_failed)? {
        match event.event {
            Some(Event::Citations(c)) => citations = c.citations,
            Some(Event::Check(c)) => checks.push(c),
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
            "answer_mode": answer_mode_name(done.answer_mode),
            "supported_share": done.supported_share,
            "replaced_sentences": done.replaced_sentences,
            "dropped_sentences": done.dropped_sentences,
            "sentences": checks.iter().map(check_json).collect::<Vec<_>>(),
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
    if args.verification && !checks.is_empty() {
        println!("\nVerification:");
        for c in &checks {
            let cites: String = c.citations.iter().map(|n| format!("[{n}]")).collect();
            println!(
                "  {}. {} · support {:.2} · cites {}",
                c.index + 1,
                status_name(c.status),
                c.support,
                if cites.is_empty() { "nothing" } else { &cites }
            );
            if !c.generated.is_empty() && c.generated != c.shown {
                println!("     model wrote: {}", c.generated);
            }
            if !c.unsupported_facts.is_empty() {
                println!(
                    "     not in the passages: {}",
                    c.unsupported_facts.join(", ")
                );
            }
        }
    }
    let verified = done.supported_share.map_or(String::new(), |s| {
        format!(" · {:.0}% of the model's sentences supported", s * 100.0)
    });
    println!(
        "\nrecord {} · {} · {reason} · {} prompt + {} answer tokens{verified}",
        done.record_id,
        answer_mode_name(done.answer_mode),
        done.prompt_tokens,
        done.answer_tokens
    );
    if args.timings {
        println!(
            "retrieve {:.0} ms · prefill {:.0} ms · first token {:.0} ms · total {:.0} ms",
            timings.retrieve_ms, timings.prefill_ms, timings.first_token_ms, timings.total_ms
        );
    }
    Ok(())
}
