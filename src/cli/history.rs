//! `quarry history list|show|rate|export|delete`: the prompt history of a
//! running server.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use quarry::proto::{self, history_client::HistoryClient};
use serde_json::json;

use super::ask::{answer_mode_name, status_name, AnswerModeArg};
use super::{call_failed, format_time, ClientArgs};

/// Filters shared by `list` and `export`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this collection.
    #[arg(long, short)]
    pub collection: Option<String>,
    /// Only this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Only records created at or after this time (RFC 3339, e.g.
    /// 2026-11-27T10:00:00Z).
    #[arg(long)]
    pub since: Option<humantime::Timestamp>,
    /// Only records created before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<humantime::Timestamp>,
    /// Only records rated at least this (-1 to 5).
    #[arg(long, allow_negative_numbers = true)]
    pub min_rating: Option<i32>,
    /// Only records rated at most this (-1 to 5).
    #[arg(long, allow_negative_numbers = true)]
    pub max_rating: Option<i32>,
    /// Only records whose question or answer contains this text
    /// (case-insensitive).
    #[arg(long)]
    pub contains: Option<String>,
    /// Only rated (true) or unrated (false) records.
    #[arg(long)]
    pub rated: Option<bool>,
    /// Only answers with a sentence that failed verification or refused as
    /// not supported (true), or only answers whose every sentence was
    /// supported (false).
    #[arg(long)]
    pub unsupported: Option<bool>,
    /// Only answers built in this mode.
    #[arg(long, value_enum)]
    pub answer_mode: Option<AnswerModeArg>,
    /// Only answers that ended for this reason.
    #[arg(long, value_enum)]
    pub finish_reason: Option<FinishArg>,
}

/// Finish reasons, as `--finish-reason` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FinishArg {
    /// The answer ended normally.
    Stop,
    /// max_new_tokens was reached.
    Length,
    /// A stop sequence was produced.
    StopSequence,
    /// Nothing relevant was retrieved.
    NoContext,
    /// The passages support no answer.
    NotSupported,
    /// The client left or its deadline passed.
    Cancelled,
}

impl From<FinishArg> for proto::FinishReason {
    fn from(f: FinishArg) -> Self {
        match f {
            FinishArg::Stop => Self::Stop,
            FinishArg::Length => Self::Length,
            FinishArg::StopSequence => Self::StopSequence,
            FinishArg::NoContext => Self::NoContext,
            FinishArg::NotSupported => Self::NotSupported,
            FinishArg::Cancelled => Self::Cancelled,
        }
    }
}

impl FilterArgs {
    fn to_proto(&self) -> proto::RecordFilter {
        let ms = |t: &humantime::Timestamp| {
            let t: std::time::SystemTime = (*t).into();
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        proto::RecordFilter {
            collection: self.collection.clone().unwrap_or_default(),
            session_id: self.session.clone().unwrap_or_default(),
            created_after: self.since.as_ref().map(ms),
            created_before: self.until.as_ref().map(ms),
            min_rating: self.min_rating,
            max_rating: self.max_rating,
            text_contains: self.contains.clone().unwrap_or_default(),
            rated: self.rated,
            unsupported: self.unsupported,
            answer_mode: self
                .answer_mode
                .map_or(0, |m| proto::AnswerMode::from(m) as i32),
            finish_reason: self
                .finish_reason
                .map_or(0, |f| proto::FinishReason::from(f) as i32),
        }
    }
}

/// Prompt history commands.
#[derive(Debug, clap::Subcommand)]
pub enum HistoryCommand {
    /// List records, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Records per page (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The page after this one (the token a previous list printed).
        #[arg(long)]
        page_token: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one record in full: question, prompt, answer, sources.
    Show {
        /// The record's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Rate a record (-1 to 5), with an optional comment.
    Rate {
        /// The record's id.
        id: String,
        /// The rating.
        #[arg(allow_negative_numbers = true)]
        score: i32,
        /// A comment.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write every matching record as JSON lines, oldest first.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete records by id, or a whole session (erasure).
    Delete {
        /// Record ids.
        ids: Vec<String>,
        /// Delete every record of this session instead.
        #[arg(long, conflicts_with = "ids")]
        session: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn reason_name(r: i32) -> String {
    proto::FinishReason::try_from(r)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("FINISH_REASON_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

/// A record as JSON (the export format).
fn to_json(r: &proto::Record) -> serde_json::Value {
    let t = r.timings.unwrap_or_default();
    json!({
        "id": r.id,
        "created_at": r.created_at,
        "collection": r.collection,
        "session_id": r.session_id,
        "principal": r.principal,
        "question": r.question,
        "answer": r.answer,
        "finish_reason": reason_name(r.finish_reason),
        "retrieved": r.retrieved.iter().map(|c| json!({
            "chunk_id": c.chunk_id, "document_id": c.document_id, "score": c.score,
        })).collect::<Vec<_>>(),
        "citations": r.citations.iter().map(|c| json!({
            "number": c.number, "chunk_id": c.chunk_id, "document_id": c.document_id,
        })).collect::<Vec<_>>(),
        "prompt": r.prompt,
        "generator_model": r.generator_model,
        "embedding_model": r.embedding_model,
        "generation": r.generation.as_ref().map(|g| json!({
            "max_new_tokens": g.max_new_tokens, "temperature": g.temperature,
            "top_k": g.top_k, "top_p": g.top_p, "repetition_penalty": g.repetition_penalty,
            "seed": g.seed, "stop": g.stop,
        })),
        "prompt_tokens": r.prompt_tokens,
        "answer_tokens": r.answer_tokens,
        "timings_ms": {
            "retrieve": t.retrieve_ms, "prefill": t.prefill_ms,
            "first_token": t.first_token_ms, "total": t.total_ms,
        },
        "rating": r.rating,
        "comment": r.comment,
        "previous_record_id": r.previous_record_id,
        "answer_mode": answer_mode_name(r.answer_mode),
        "generated_answer": r.generated_answer,
        "evidence": r.evidence.iter().map(|e| json!({
            "passage": e.passage, "text": e.text, "score": e.score,
        })).collect::<Vec<_>>(),
        "sentences": r.sentences.iter().map(super::ask::check_json).collect::<Vec<_>>(),
        "supported_share": r.supported_share,
        "replaced_sentences": r.replaced_sentences,
        "dropped_sentences": r.dropped_sentences,
    })
}

fn one_line(text: &str, chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

/// Runs a history subcommand.
pub async fn run(cmd: HistoryCommand) -> anyhow::Result<()> {
    match cmd {
        HistoryCommand::List {
            filter,
            limit,
            page_token,
            client,
        } => {
            let mut rpc = connect(&client).await?;
            let page = rpc
                .list_records(proto::ListRecordsRequest {
                    page_size: limit,
                    page_token: page_token.unwrap_or_default(),
                    filter: Some(filter.to_proto()),
                    ..Default::default()
                })
                .await
                .map_err(call_failed)?
                .into_inner();
            if client.json {
                let value = json!({
                    "records": page.records.iter().map(to_json).collect::<Vec<_>>(),
                    "next_page_token": page.next_page_token,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            if page.records.is_empty() {
                println!("no records");
            }
            for r in &page.records {
                let rating = r.rating.map_or(String::new(), |v| format!(" ★{v}"));
                let flag = if r.sentences.iter().any(|c| {
                    matches!(
                        proto::SentenceStatus::try_from(c.status),
                        Ok(proto::SentenceStatus::Replaced
                            | proto::SentenceStatus::Dropped
                            | proto::SentenceStatus::Unsupported)
                    )
                }) {
                    " ⚠ unsupported sentence"
                } else {
                    ""
                };
                println!(
                    "{}  {}  {}{rating}  [{} · {}]{flag}\n    Q: {}\n    A: {}",
                    r.id,
                    format_time(r.created_at),
                    r.collection,
                    answer_mode_name(r.answer_mode),
                    reason_name(r.finish_reason),
                    one_line(&r.question, 100),
                    one_line(&r.answer, 100)
                );
            }
            if !page.next_page_token.is_empty() {
                println!("\nmore: --page-token {}", page.next_page_token);
            }
        }
        HistoryCommand::Show { id, client } => {
            let r = connect(&client)
                .await?
                .get_record(proto::GetRecordRequest { id })
                .await
                .map_err(call_failed)?
                .into_inner();
            if client.json {
                println!("{}", serde_json::to_string_pretty(&to_json(&r))?);
                return Ok(());
            }
            let t = r.timings.unwrap_or_default();
            println!("record      {}", r.id);
            println!("created     {}", format_time(r.created_at));
            println!("collection  {}", r.collection);
            if !r.session_id.is_empty() {
                println!(
                    "session     {} (previous: {})",
                    r.session_id, r.previous_record_id
                );
            }
            println!(
                "model       {} (embedder {})",
                r.generator_model, r.embedding_model
            );
            println!(
                "finish      {} · {} mode · {} prompt + {} answer tokens",
                reason_name(r.finish_reason),
                answer_mode_name(r.answer_mode),
                r.prompt_tokens,
                r.answer_tokens
            );
            if let Some(share) = r.supported_share {
                println!(
                    "verified    {:.0}% of the model's sentences supported · {} replaced · {} dropped",
                    share * 100.0,
                    r.replaced_sentences,
                    r.dropped_sentences
                );
            }
            println!(
                "timings     retrieve {:.0} ms · prefill {:.0} ms · first token {:.0} ms · total {:.0} ms",
                t.retrieve_ms, t.prefill_ms, t.first_token_ms, t.total_ms
            );
            if let Some(rating) = r.rating {
                println!("rating      {rating} {}", r.comment);
            }
            println!("\nQuestion:\n{}\n\nAnswer:\n{}\n", r.question, r.answer);
            if !r.sentences.is_empty() {
                println!("Sentences:");
                for c in &r.sentences {
                    let cites: Vec<String> = c.citations.iter().map(|n| format!("[{n}]")).collect();
                    println!(
                        "  {}. {} · support {:.2} · cites {}{}",
                        c.index + 1,
                        status_name(c.status),
                        c.support,
                        if cites.is_empty() {
                            "nothing".to_owned()
                        } else {
                            cites.join("")
                        },
                        if c.written_citations.is_empty() || c.written_citations == c.citations {
                            String::new()
                        } else {
                            format!(
                                " (model wrote {})",
                                c.written_citations
                                    .iter()
                                    .map(|n| format!("[{n}]"))
                                    .collect::<String>()
                            )
                        }
                    );
                    if !c.generated.is_empty() {
                        println!("     model: {}", one_line(&c.generated, 200));
                    }
                    if c.shown != c.generated && !c.shown.is_empty() {
                        println!("     shown: {}", one_line(&c.shown, 200));
                    }
                    if !c.unsupported_facts.is_empty() {
                        println!(
                            "     not in the passages: {}",
                            c.unsupported_facts.join(", ")
                        );
                    }
                }
                println!();
            }
            if !r.evidence.is_empty() {
                println!("Evidence:");
                for e in &r.evidence {
                    println!(
                        "  [{}] {:.3} {}",
                        e.passage,
                        e.score,
                        one_line(&e.text, 160)
                    );
                }
                println!();
            }
            println!("Retrieved:");
            for (i, c) in r.retrieved.iter().enumerate() {
                let cited = r.citations.iter().any(|u| u.number as usize == i + 1);
                println!(
                    "  [{}] {} chunk {} score {:.3}{}",
                    i + 1,
                    c.document_id,
                    c.chunk_id,
                    c.score,
                    if cited { " (cited)" } else { "" }
                );
            }
            println!("\nPrompt:\n{}", r.prompt);
        }
        HistoryCommand::Rate {
            id,
            score,
            comment,
            client,
        } => {
            let r = connect(&client)
                .await?
                .rate_record(proto::RateRecordRequest { id, score, comment })
                .await
                .map_err(call_failed)?
                .into_inner();
            if client.json {
                println!("{}", serde_json::to_string_pretty(&to_json(&r))?);
            } else {
                println!("rated {} {}", r.id, r.rating.unwrap_or_default());
            }
        }
        HistoryCommand::Export {
            filter,
            output,
            client,
        } => {
            let mut stream = connect(&client)
                .await?
                .export_records(proto::ExportRecordsRequest {
                    filter: Some(filter.to_proto()),
                })
                .await
                .map_err(call_failed)?
                .into_inner();
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let mut n = 0u64;
            while let Some(r) = stream.message().await.map_err(call_failed)? {
                serde_json::to_writer(&mut out, &to_json(&r))?;
                out.write_all(b"\n")?;
                n += 1;
            }
            out.flush()?;
            if let Some(path) = output {
                eprintln!("{n} records written to {}", path.display());
            }
        }
        HistoryCommand::Delete {
            ids,
            session,
            client,
        } => {
            let deleted = connect(&client)
                .await?
                .delete_records(proto::DeleteRecordsRequest {
                    ids,
                    session_id: session.unwrap_or_default(),
                })
                .await
                .map_err(call_failed)?
                .into_inner()
                .deleted;
            if client.json {
                println!("{}", json!({ "deleted": deleted }));
            } else {
                println!("{deleted} records deleted");
            }
        }
    }
    Ok(())
}

async fn connect(client: &ClientArgs) -> anyhow::Result<HistoryClient<super::AuthChannel>> {
    Ok(HistoryClient::new(client.connect().await?)
        .max_decoding_message_size(client.max_message_bytes()))
}
