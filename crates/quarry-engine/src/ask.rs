//! Ask: retrieve passages, pack them into a grounded prompt, generate on
//! the model thread, stream the answer, and record everything.
//!
//! Everything that can refuse the call (validation, an unknown
//! collection, a full generation queue, a prompt over the context window)
//! happens before the stream starts, so the client gets a status instead
//! of a broken stream. After that the answer streams; when the client
//! goes away the generation is stopped within a token and the record
//! still written, marked cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_core::{
    CollectionName, Filter, InvalidArgument, Record, RecordId, RetrievedChunk, Timings,
    UsedCitation,
};
use quarry_generate::{Event, FinishReason, Message, SamplingParams};
use quarry_index::{Fusion, Mode};
use tokio::sync::mpsc;

use crate::context::{self, Candidate};
use crate::{Engine, EngineError, Result, SearchHit, SearchRequest};

/// The answer when nothing relevant was retrieved; the model is not run.
pub const NOT_FOUND_ANSWER: &str =
    "I could not find anything about this in the collection, so I cannot answer it.";

/// The instructions every grounded prompt starts with.
pub const SYSTEM_PROMPT: &str =
    "You answer questions using only the numbered passages the user gives. \
Cite the passage each fact comes from by its number in square brackets, like [1]. \
If the passages do not contain the answer, say that you cannot find it in the collection. \
Answer briefly.";

/// Tokens kept free between the packed prompt and the context window:
/// the template's joins can tokenize a little differently from the parts.
const PROMPT_SLACK: usize = 16;

/// Events that may wait for a slow client before generation waits.
const EVENT_BUFFER: usize = 32;

/// Limits and defaults of Ask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AskConfig {
    /// Passages retrieved when the request says 0.
    pub default_top_k: usize,
    /// Most passages a request may ask for.
    pub max_top_k: usize,
    /// Longest question, in bytes.
    pub max_question_bytes: usize,
    /// A passage goes to the model only when its cosine similarity to the
    /// question reaches this; with none left, the answer is
    /// [`NOT_FOUND_ANSWER`].
    pub min_similarity: f32,
    /// Tokens of earlier turns of the session kept in the prompt.
    pub history_tokens: usize,
    /// Tokens generated when the request does not say.
    pub default_max_new_tokens: usize,
    /// Most tokens a request may ask for.
    pub max_new_tokens: usize,
    /// Characters of each passage shown in a citation's snippet.
    pub snippet_chars: usize,
    /// Store records with e-mail addresses, card and phone numbers
    /// replaced ([`crate::redact`]).
    pub redact_records: bool,
}

impl Default for AskConfig {
    fn default() -> Self {
        Self {
            default_top_k: 5,
            max_top_k: 100,
            max_question_bytes: 4096,
            min_similarity: 0.3,
            history_tokens: 512,
            default_max_new_tokens: 256,
            max_new_tokens: 1024,
            snippet_chars: 240,
            redact_records: false,
        }
    }
}

/// Generation settings of one Ask; `None` takes the server's default
/// (greedy decoding, [`AskConfig::default_max_new_tokens`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOptions {
    /// Most tokens to generate.
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f32>,
    /// Top-k filter (0 = off).
    pub top_k: Option<usize>,
    /// Nucleus filter (1 = off).
    pub top_p: Option<f32>,
    /// Repetition penalty (1 = off).
    pub repetition_penalty: Option<f32>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
}

/// An Ask (fields as in the API).
#[derive(Debug, Clone, PartialEq)]
pub struct AskRequest {
    /// The collection.
    pub collection: CollectionName,
    /// The question.
    pub question: String,
    /// The conversation, if any.
    pub session_id: Option<String>,
    /// Passages to retrieve; 0 means the default.
    pub top_k: usize,
    /// Metadata filter.
    pub filter: Option<Filter>,
    /// Retrievers.
    pub mode: Mode,
    /// Generation settings.
    pub generation: GenerationOptions,
    /// Who asks (empty when auth is off).
    pub principal: String,
    /// When the client stops waiting (its gRPC deadline): generation stops
    /// there and the record says cancelled.
    pub deadline: Option<Instant>,
}

/// A passage given to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    /// Its marker number.
    pub number: u32,
    /// The chunk.
    pub chunk_id: u64,
    /// The document.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// The start of the passage.
    pub snippet: String,
    /// Fused score.
    pub score: f64,
    /// Cosine similarity to the question.
    pub dense_score: Option<f64>,
    /// BM25 score, when the keyword retriever found it.
    pub keyword_score: Option<f64>,
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskFinish {
    /// The model ended its turn.
    Stop,
    /// max_new_tokens was reached.
    Length,
    /// A stop sequence appeared.
    StopSequence,
    /// Nothing relevant was retrieved; the fixed answer was given.
    NoContext,
    /// The client went away.
    Cancelled,
    /// The generator failed (logged); the answer is what was produced.
    Failed,
}

impl AskFinish {
    /// The name stored in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::StopSequence => "stop_sequence",
            Self::NoContext => "no_context",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// The value for a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Stop,
            Self::Length,
            Self::StopSequence,
            Self::NoContext,
            Self::Cancelled,
            Self::Failed,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// The last event of an Ask.
#[derive(Debug, Clone, PartialEq)]
pub struct AskDone {
    /// The stored record.
    pub record_id: RecordId,
    /// Why the answer ended.
    pub finish: AskFinish,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Answer tokens.
    pub answer_tokens: u32,
    /// Timings.
    pub timings: Timings,
    /// The citations the answer used.
    pub used: Vec<UsedCitation>,
    /// Markers that pointed at no given passage.
    pub invalid_citations: u32,
    /// The generator's id.
    pub model: String,
}

/// One event of an Ask's stream, in order: `Citations` once, `Delta`s,
/// `Done` once.
#[derive(Debug, Clone, PartialEq)]
pub enum AskEvent {
    /// The passages given to the model.
    Citations(Vec<Citation>),
    /// More answer text.
    Delta(String),
    /// The end.
    Done(AskDone),
}

fn valid_session_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn validate(req: &AskRequest, cfg: &AskConfig) -> Result<(), InvalidArgument> {
    InvalidArgument::check_text("question", &req.question, cfg.max_question_bytes)?;
    if let Some(s) = &req.session_id {
        if !valid_session_id(s) {
            return Err(InvalidArgument::new(
                "session_id",
                "must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'",
            ));
        }
    }
    if req.top_k > cfg.max_top_k {
        return Err(InvalidArgument::new(
            "top_k",
            format!("is {}; the limit is {}", req.top_k, cfg.max_top_k),
        ));
    }
    if let Some(n) = req.generation.max_new_tokens {
        if n == 0 || n > cfg.max_new_tokens {
            return Err(InvalidArgument::new(
                "generation.max_new_tokens",
                format!("is {n}; allowed range is 1..={}", cfg.max_new_tokens),
            ));
        }
    }
    if let Some(f) = &req.filter {
        f.validate("filter")?;
    }
    Ok(())
}

/// The sampling parameters of a request over the server's defaults.
pub fn sampling_params(
    g: &GenerationOptions,
    cfg: &AskConfig,
) -> Result<SamplingParams, InvalidArgument> {
    let d = SamplingParams::default();
    let params = SamplingParams {
        temperature: g.temperature.unwrap_or(0.0),
        top_k: g.top_k.unwrap_or(d.top_k),
        top_p: g.top_p.unwrap_or(d.top_p),
        repetition_penalty: g.repetition_penalty.unwrap_or(d.repetition_penalty),
        seed: g.seed.unwrap_or(d.seed),
        max_new_tokens: g.max_new_tokens.unwrap_or(cfg.default_max_new_tokens),
        stop: g.stop.clone(),
    };
    params.validate("generation.")?;
    Ok(params)
}

fn params_json(p: &SamplingParams) -> String {
    serde_json::json!({
        "temperature": p.temperature,
        "top_k": p.top_k,
        "top_p": p.top_p,
        "repetition_penalty": p.repetition_penalty,
        "seed": p.seed,
        "max_new_tokens": p.max_new_tokens,
        "stop": p.stop,
    })
    .to_string()
}

fn snippet(text: &str, chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the blocking part of an Ask prepares.
struct Prepared {
    /// The hits given to the model, with their numbers.
    given: Vec<(u32, SearchHit, String, f64)>,
    /// The rendered prompt (empty when nothing relevant was found).
    prompt: String,
    previous: Option<RecordId>,
}

impl Engine {
    /// Answers a question from a collection; returns the event stream.
    pub async fn ask(&self, req: AskRequest) -> Result<mpsc::Receiver<Result<AskEvent>>> {
        let started = Instant::now();
        let cfg = self.inner.ask;
        let generator = self.inner.generator.clone().ok_or_else(|| {
            EngineError::Unavailable(
                "this server has no generation model (started with --generate-model none)".into(),
            )
        })?;
        validate(&req, &cfg)?;
        let params = sampling_params(&req.generation, &cfg)?;
        if req.deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(EngineError::DeadlineExceeded(
                "the call's deadline passed before retrieval".into(),
            ));
        }
        let top_k = if req.top_k == 0 {
            cfg.default_top_k
        } else {
            req.top_k
        };
        // The question's vector serves the dense retriever and the
        // relevance gate, in every mode.
        let vector = self.embed_one(&req.question).await?;
        let hits = self
            .search_with_vector(
                SearchRequest {
                    collection: req.collection.clone(),
                    query: req.question.clone(),
                    top_k,
                    mode: req.mode,
                    filter: req.filter.clone(),
                    fusion: Fusion::default(),
                },
                (req.mode != Mode::Keyword).then(|| vector.clone()),
            )
            .await?;
        let retrieve = started.elapsed();

        let prep_req = req.clone();
        let prep_gen = Arc::clone(&generator);
        let max_new = params.max_new_tokens;
        let prepared = self
            .blocking(move |inner| {
                prepare(inner, &prep_gen, &cfg, &prep_req, hits, &vector, max_new)
            })
            .await?;

        let citations: Vec<Citation> = prepared
            .given
            .iter()
            .map(|(number, h, _, sim)| Citation {
                number: *number,
                chunk_id: h.chunk_id,
                document_id: h.document_id.clone(),
                title: h.title.clone(),
                snippet: snippet(&h.text, cfg.snippet_chars),
                score: h.score,
                dense_score: Some(*sim),
                keyword_score: h.keyword.map(|(_, s)| s as f64),
            })
            .collect();
        let cancel = Arc::new(AtomicBool::new(false));
        let generation = if prepared.given.is_empty() {
            None
        } else {
            Some(
                generator
                    .queue
                    .submit_cancellable(&prepared.prompt, params.clone(), Arc::clone(&cancel))
                    .map_err(EngineError::from)?,
            )
        };

        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        // Sent before the task starts, so it is the stream's first event.
        let _ = tx.try_send(Ok(AskEvent::Citations(citations)));
        let engine = self.clone();
        let run = Run {
            req,
            params,
            prepared,
            retrieve,
            started,
            model: generator.model_id.clone(),
        };
        tokio::spawn(async move {
            engine.stream_answer(run, generation, cancel, tx).await;
        });
        Ok(rx)
    }

    /// Forwards the generation to the client, then records it.
    async fn stream_answer(
        &self,
        run: Run,
        generation: Option<mpsc::Receiver<Event>>,
        cancel: Arc<AtomicBool>,
        tx: mpsc::Sender<Result<AskEvent>>,
    ) {
        let mut answer = String::new();
        let mut first_text = None;
        let mut client_gone = false;
        let mut finish = None;
        match generation {
            None => {
                answer.push_str(NOT_FOUND_ANSWER);
                client_gone = tx
                    .send(Ok(AskEvent::Delta(NOT_FOUND_ANSWER.to_owned())))
                    .await
                    .is_err();
            }
            Some(mut events) => loop {
                let deadline = run.req.deadline;
                tokio::select! {
                    _ = async move {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d.into()).await,
                            None => std::future::pending().await,
                        }
                    }, if !client_gone => {
                        // Past the client's deadline: it has stopped
                        // listening; so does the model.
                        client_gone = true;
                        cancel.store(true, Ordering::Relaxed);
                        let _ = tx.try_send(Err(EngineError::DeadlineExceeded(
                            "the call's deadline passed; the generation was stopped".into(),
                        )));
                    }
                    event = events.recv() => match event {
                        Some(Event::Text(text)) => {
                            first_text.get_or_insert_with(|| run.started.elapsed());
                            answer.push_str(&text);
                            if !client_gone && tx.send(Ok(AskEvent::Delta(text))).await.is_err() {
                                client_gone = true;
                                cancel.store(true, Ordering::Relaxed);
                            }
                        }
                        Some(Event::Done(f)) => {
                            finish = Some(f);
                            break;
                        }
                        // The generator failed (it logged why).
                        None => break,
                    },
                    _ = tx.closed(), if !client_gone => {
                        client_gone = true;
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            },
        }
        let reason = match (&finish, run.prepared.given.is_empty()) {
            (_, true) => AskFinish::NoContext,
            (None, false) => AskFinish::Failed,
            (Some(f), false) => match f.reason {
                FinishReason::EndOfTurn => AskFinish::Stop,
                FinishReason::Length => AskFinish::Length,
                FinishReason::Stop => AskFinish::StopSequence,
                FinishReason::Cancelled => AskFinish::Cancelled,
            },
        };
        let reason = if client_gone && reason != AskFinish::NoContext {
            AskFinish::Cancelled
        } else {
            reason
        };
        let given = &run.prepared.given;
        let (numbers, invalid) = context::cited_numbers(&answer, given.len() as u32);
        let used: Vec<UsedCitation> = numbers
            .iter()
            .map(|n| {
                let (_, hit, _, _) = &given[*n as usize - 1];
                UsedCitation {
                    number: *n,
                    chunk_id: hit.chunk_id,
                    document_id: hit.document_id.clone(),
                }
            })
            .collect();
        let total = run.started.elapsed();
        let private = |text: String| {
            if self.inner.ask.redact_records {
                crate::redact::redact(&text)
            } else {
                text
            }
        };
        let timings = Timings {
            retrieve_ms: ms(run.retrieve),
            prefill_ms: finish.map_or(0.0, |f| ms(f.time_to_first_token)),
            first_token_ms: ms(first_text.unwrap_or(total)),
            total_ms: ms(total),
        };
        let record = Record {
            id: RecordId(0),
            created_at: quarry_core::now_ms(),
            collection: run.req.collection.to_string(),
            question: private(run.req.question.clone()),
            answer: private(answer),
            session_id: run.req.session_id.clone().unwrap_or_default(),
            principal: run.req.principal.clone(),
            retrieved: given
                .iter()
                .map(|(_, h, _, _)| RetrievedChunk {
                    chunk_id: h.chunk_id,
                    document_id: h.document_id.clone(),
                    score: h.score,
                })
                .collect(),
            prompt: private(run.prepared.prompt.clone()),
            citations: used.clone(),
            generator_model: run.model.clone(),
            embedding_model: self.inner.embed_model.clone(),
            generation_json: params_json(&run.params),
            prompt_tokens: finish.map_or(0, |f| f.prompt_tokens as u32),
            answer_tokens: finish.map_or(0, |f| f.completion_tokens as u32),
            timings,
            finish_reason: reason.as_str().to_owned(),
            rating: None,
            comment: String::new(),
            previous_record_id: run.prepared.previous,
        };
        let stored = self
            .blocking(move |inner| Ok(inner.disk.watch(inner.store.insert_record(record))?))
            .await;
        let event = stored.map(|r| {
            AskEvent::Done(AskDone {
                record_id: r.id,
                finish: reason,
                prompt_tokens: r.prompt_tokens,
                answer_tokens: r.answer_tokens,
                timings,
                used,
                invalid_citations: invalid,
                model: run.model,
            })
        });
        if let Err(e) = &event {
            tracing::error!(error = %e, "the answer could not be recorded");
        }
        if !client_gone {
            let _ = tx.send(event).await;
        }
    }
}

/// What the streaming task carries.
struct Run {
    req: AskRequest,
    params: SamplingParams,
    prepared: Prepared,
    retrieve: Duration,
    started: Instant,
    model: String,
}

/// The blocking part of an Ask: the relevance gate, the session's earlier
/// turns, packing, rendering.
fn prepare(
    inner: &crate::Inner,
    generator: &crate::Generator,
    cfg: &AskConfig,
    req: &AskRequest,
    hits: Vec<SearchHit>,
    vector: &[f32],
    max_new_tokens: usize,
) -> Result<Prepared> {
    let queue = &generator.queue;
    let count = |text: &str| queue.count_tokens(text).unwrap_or(usize::MAX / 4);
    let coll = inner.store.collection(&req.collection)?;
    // Cosine similarity of every hit (stored vectors are normalised), also
    // for hits only the keyword retriever found.
    let mut relevant = Vec::new();
    for hit in hits {
        let sim = match hit.dense {
            Some((_, s)) => s as f64,
            None => match inner.store.vector(coll.id, hit.chunk_id)? {
                Some(v) => v.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>() as f64,
                None => continue,
            },
        };
        if sim >= cfg.min_similarity as f64 {
            relevant.push((hit, sim));
        }
    }

    let mut previous = None;
    let mut turns: Vec<Message> = Vec::new();
    if let Some(session) = &req.session_id {
        let mut used = 0;
        for id in inner.store.session_record_ids(session) {
            let record = inner.store.record(id?)?;
            previous.get_or_insert(record.id);
            if record.answer.trim().is_empty() {
                continue;
            }
            let cost = count(&record.question) + count(&record.answer);
            if used + cost > cfg.history_tokens {
                break;
            }
            used += cost;
            turns.push(Message::new("assistant", queue.defuse(&record.answer)));
            turns.push(Message::new("user", queue.defuse(&record.question)));
        }
        turns.reverse();
    }
    if relevant.is_empty() {
        return Ok(Prepared {
            given: Vec::new(),
            prompt: String::new(),
            previous,
        });
    }

    let messages = |passages: &str| {
        let mut m = vec![Message::new("system", SYSTEM_PROMPT)];
        m.extend(turns.iter().cloned());
        m.push(Message::new(
            "user",
            format!(
                "Passages:\n{passages}Question: {}",
                queue.defuse(req.question.trim())
            ),
        ));
        m
    };
    let frame = queue.render(&messages(""))?;
    let overhead = count(&frame) + 1 + PROMPT_SLACK;
    let window = queue.context_length();
    let budget = window.saturating_sub(max_new_tokens + overhead);
    // Defused before packing, so that the token counts are the prompt's.
    let safe: Vec<(String, String)> = relevant
        .iter()
        .map(|(h, _)| {
            (
                queue.defuse(&h.title).into_owned(),
                queue.defuse(&h.text).into_owned(),
            )
        })
        .collect();
    let candidates: Vec<Candidate> = safe
        .iter()
        .map(|(title, text)| Candidate { title, text })
        .collect();
    let packed = context::pack(&candidates, budget, &count);
    if packed.is_empty() {
        return Err(InvalidArgument::new(
            "generation.max_new_tokens",
            format!(
                "is {max_new_tokens}; with the question and conversation ({overhead} tokens) it leaves no room for a passage in the model's context window of {window} tokens"
            ),
        )
        .into());
    }
    let passages: String = packed
        .iter()
        .map(|p| context::format_passage(p.number, candidates[p.candidate].title, &p.text))
        .collect();
    let prompt = queue.render(&messages(&passages))?;
    let given = packed
        .into_iter()
        .map(|p| {
            let (hit, sim) = relevant[p.candidate].clone();
            (p.number, hit, p.text, sim)
        })
        .collect();
    Ok(Prepared {
        given,
        prompt,
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_names_round_trip() {
        for f in [
            AskFinish::Stop,
            AskFinish::Length,
            AskFinish::StopSequence,
            AskFinish::NoContext,
            AskFinish::Cancelled,
            AskFinish::Failed,
        ] {
            assert_eq!(AskFinish::parse(f.as_str()), Some(f));
        }
        assert_eq!(AskFinish::parse("nope"), None);
    }

    #[test]
    fn session_ids_and_snippets() {
        assert!(valid_session_id("user-1:chat.2_b"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("has space"));
        assert!(!valid_session_id(&"x".repeat(129)));
        assert_eq!(snippet("  short  ", 10), "short");
        assert_eq!(snippet("ééééé", 3), "ééé…");
    }
}
