//! Ask: retrieve passages, find the evidence sentences, answer in the
//! requested mode (grounded, extractive or generative), stream the answer
//! sentence by sentence as it is verified, and record everything.
//!
//! Everything that can refuse the call (validation, an unknown
//! collection, a full queue, a prompt over the context window) happens
//! before the stream starts, so the client gets a status instead of a
//! broken stream. After that the answer streams; when the client goes
//! away the generation is stopped within a token and the record still
//! written, marked cancelled, with what was shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_core::{
    AnswerMode, Record, RecordId, RetrievedChunk, SentenceStatus, Timings, UsedCitation,
};
use quarry_generate::{Event, Finish, FinishReason, SamplingParams};
use quarry_index::{Fusion, Mode};
use tokio::sync::mpsc;

use crate::ask::{
    ms, params_json, sampling_params, snippet, validate, AskDone, AskEvent, AskFinish, AskRequest,
    Citation, Delta, NOT_FOUND_ANSWER,
};
use crate::grounding::{Composer, Grounding, Output, SentenceBuffer};
use crate::prompt::{self, Prepared};
use crate::{context, Engine, EngineError, Result, SearchRequest};

/// Events that may wait for a slow client before generation waits.
const EVENT_BUFFER: usize = 32;

/// How the answer will be produced, decided before the stream starts.
enum Plan {
    /// Nothing relevant was retrieved.
    NoContext,
    /// The passages do not support an answer.
    NotSupported,
    /// Quoted evidence, no model.
    Extract,
    /// The model's events.
    Generate(mpsc::Receiver<Event>),
}

/// What the streaming task carries.
struct Run {
    req: AskRequest,
    params: SamplingParams,
    prepared: Prepared,
    grounding: Option<Grounding>,
    prompt: String,
    retrieve: Duration,
    started: Instant,
    model: String,
}

/// The client's side of the stream: what was sent, and whether it is
/// still listening.
struct Client {
    tx: mpsc::Sender<Result<AskEvent>>,
    gone: bool,
    shown: String,
    first_text: Option<Duration>,
    started: Instant,
}

impl Client {
    async fn send(&mut self, event: AskEvent) {
        if self.gone {
            return;
        }
        let text = match &event {
            AskEvent::Delta(d) => Some(d.text.clone()),
            _ => None,
        };
        if self.tx.send(Ok(event)).await.is_err() {
            self.gone = true;
            return;
        }
        if let Some(text) = text {
            self.first_text
                .get_or_insert_with(|| self.started.elapsed());
            self.shown.push_str(&text);
        }
    }

    async fn output(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            let event = match o {
                Output::Delta {
                    text,
                    citations,
                    support,
                } => AskEvent::Delta(Delta {
                    text,
                    citations,
                    support: Some(support),
                }),
                Output::Check(c) => AskEvent::Check(c),
            };
            self.send(event).await;
        }
    }
}

impl Engine {
    /// Answers a question from a collection; returns the event stream.
    pub async fn ask(&self, req: AskRequest) -> Result<mpsc::Receiver<Result<AskEvent>>> {
        let started = Instant::now();
        let cfg = self.inner.ask;
        validate(&req, &cfg)?;
        let generator = match (req.answer_mode, self.inner.generator.clone()) {
            (_, Some(g)) => Some(g),
            (AnswerMode::Extractive, None) => None,
            (mode, None) => {
                return Err(EngineError::Unavailable(format!(
                    "this server has no generation model (started with --generate-model none); answer_mode {} needs one, extractive does not",
                    mode.as_str()
                )))
            }
        };
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
        // The question's vector serves the dense retriever, the relevance
        // gate and the evidence scores, in every mode.
        let vector = self.embed_one(&req.question).await?;
        let embedded = started.elapsed();
        let hits = self
            .search_with_vector(
                SearchRequest {
                    collection: req.collection.clone(),
                    query: req.question.clone(),
                    top_k,
                    mode: req.mode,
                    filter: req.filter.clone(),
                    fusion: Fusion::default(),
                    sentence_weight: 0.0,
                },
                (req.mode != Mode::Keyword).then(|| vector.clone()),
            )
            .await?;

        let prep_req = req.clone();
        let prep_gen = generator.clone();
        let max_new = params.max_new_tokens;
        let prep_vector = vector.clone();
        let prepared = self
            .blocking(move |inner| {
                prompt::prepare(
                    inner,
                    prep_gen.as_ref().map(|g| &g.queue),
                    &cfg,
                    &prep_req,
                    hits,
                    &prep_vector,
                    max_new,
                )
            })
            .await?;
        let searched = started.elapsed();
        let grounding = if prepared.given.is_empty() {
            None
        } else {
            Some(
                self.ground(&req.question, &vector, &prepared, req.answer_mode)
                    .await?,
            )
        };
        let retrieve = started.elapsed();
        tracing::debug!(
            target: "quarry::timing",
            embed_ms = ms(embedded),
            search_ms = ms(searched - embedded),
            evidence_ms = ms(retrieve - searched),
            "ask prepared"
        );

        let cancel = Arc::new(AtomicBool::new(false));
        let mut prompt = prepared.prompt.clone();
        let plan = match (&grounding, req.answer_mode) {
            (None, _) => Plan::NoContext,
            (Some(g), AnswerMode::Grounded | AnswerMode::Extractive) if !g.answerable => {
                Plan::NotSupported
            }
            (Some(_), AnswerMode::Extractive) => Plan::Extract,
            (Some(g), mode) => {
                let generator = generator.as_ref().ok_or_else(|| {
                    EngineError::Internal("no generator for a generating mode".into())
                })?;
                if mode == AnswerMode::Grounded {
                    prompt = prompt::grounded_prompt(
                        &generator.queue,
                        &prepared.turns,
                        &req.question,
                        g,
                        max_new,
                    )?;
                }
                Plan::Generate(
                    generator
                        .queue
                        .submit_cancellable(&prompt, params.clone(), Arc::clone(&cancel))
                        .map_err(EngineError::from)?,
                )
            }
        };

        let citations: Vec<Citation> = prepared
            .given
            .iter()
            .map(|g| Citation {
                number: g.number,
                chunk_id: g.hit.chunk_id,
                document_id: g.hit.document_id.clone(),
                title: g.hit.title.clone(),
                snippet: snippet(&g.hit.text, cfg.snippet_chars),
                score: g.hit.score,
                dense_score: Some(g.similarity),
                keyword_score: g.hit.keyword.map(|(_, s)| s as f64),
            })
            .collect();
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        // Sent before the task starts, so it is the stream's first event.
        let _ = tx.try_send(Ok(AskEvent::Citations(citations)));
        let engine = self.clone();
        let model = match plan {
            Plan::Generate(_) => generator.map(|g| g.model_id.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        let run = Run {
            req,
            params,
            prepared,
            grounding,
            prompt,
            retrieve,
            started,
            model,
        };
        tokio::spawn(async move {
            engine.stream_answer(run, plan, cancel, tx).await;
        });
        Ok(rx)
    }

    /// The evidence of the given passages: their sentences embedded (one
    /// batch on the model thread) and scored against the question.
    async fn ground(
        &self,
        question: &str,
        vector: &[f32],
        prepared: &Prepared,
        mode: AnswerMode,
    ) -> Result<Grounding> {
        let t0 = Instant::now();
        let passages = prepared.ground_passages();
        let mut candidates = Grounding::candidates(&passages);
        if mode == AnswerMode::Extractive {
            // Milliseconds matter more than the last sentence or two.
            Grounding::prune(
                &mut candidates,
                question,
                &prepared.word_weights,
                &passages,
                &self.inner.ask.grounding,
            );
        }
        let vectors = if candidates.is_empty() {
            Vec::new()
        } else {
            self.inner.embedder.embed(candidates.texts()).await?
        };
        let t1 = Instant::now();
        let mut g = Grounding::new(
            question,
            vector,
            &prepared.word_weights,
            &passages,
            candidates,
            vectors,
            self.inner.ask.grounding,
        );
        let words = g.alignment_words();
        if !words.is_empty() {
            let cached = self.inner.word_vectors.get(&words);
            let missing: Vec<String> = words
                .iter()
                .zip(&cached)
                .filter(|(_, v)| v.is_none())
                .map(|(w, _)| w.clone())
                .collect();
            let fresh = self.inner.embedder.embed(missing.clone()).await?;
            self.inner.word_vectors.put(&missing, &fresh);
            let mut fresh = fresh.into_iter();
            let vectors: Vec<Vec<f32>> = cached
                .into_iter()
                .map(|v| match v {
                    Some(v) => v.to_vec(),
                    None => fresh.next().unwrap_or_default(),
                })
                .collect();
            g.align(&vectors);
        }
        tracing::debug!(
            target: "quarry::timing",
            sentences = g.evidence.ranked.len(),
            sentences_ms = ms(t1 - t0),
            score_and_words_ms = ms(t1.elapsed()),
            "evidence scored"
        );
        if tracing::enabled!(target: "quarry::evidence", tracing::Level::DEBUG) {
            for (position, s) in g.evidence.ranked.iter().enumerate() {
                tracing::debug!(
                    target: "quarry::evidence",
                    question,
                    position,
                    passage = s.number,
                    sentence = %s.text,
                    cosine = s.cosine,
                    lexical = s.lexical,
                    missing = s.missing,
                    answer_type = s.answer_type,
                    coverage = s.coverage,
                    passage_cosine = s.passage_cosine,
                    rank = s.rank,
                    alignment = s.alignment,
                    score = s.score,
                    "evidence candidate"
                );
            }
        }
        Ok(g)
    }

    /// The vector of one generated sentence; an embedder that is busy or
    /// failing leaves it unverifiable by meaning (an empty vector), so
    /// only its facts and words can support it.
    async fn sentence_vector(&self, sentence: &str) -> Vec<f32> {
        match self.embed_one(sentence).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "a generated sentence could not be embedded for verification");
                Vec::new()
            }
        }
    }

    /// Streams the answer to the client, then records it.
    async fn stream_answer(
        &self,
        run: Run,
        plan: Plan,
        cancel: Arc<AtomicBool>,
        tx: mpsc::Sender<Result<AskEvent>>,
    ) {
        let mode = run.req.answer_mode;
        let mut client = Client {
            tx,
            gone: false,
            shown: String::new(),
            first_text: None,
            started: run.started,
        };
        let mut composer = run.grounding.as_ref().map(|g| Composer::new(mode, g));
        let mut generated = String::new();
        let mut finish: Option<Finish> = None;
        let mut stopped_early = false;
        let mut reason = None;
        match plan {
            Plan::NoContext | Plan::NotSupported => {
                reason = Some(if matches!(plan, Plan::NoContext) {
                    AskFinish::NoContext
                } else {
                    AskFinish::NotSupported
                });
                client
                    .send(AskEvent::Delta(Delta::text(NOT_FOUND_ANSWER)))
                    .await;
            }
            Plan::Extract => {
                if let Some(c) = composer.as_mut() {
                    let out = c.extractive();
                    client.output(out).await;
                }
                reason = Some(AskFinish::Stop);
            }
            Plan::Generate(mut events) => {
                let mut buffer = SentenceBuffer::default();
                let deadline = run.req.deadline;
                loop {
                    tokio::select! {
                        _ = async move {
                            match deadline {
                                Some(d) => tokio::time::sleep_until(d.into()).await,
                                None => std::future::pending().await,
                            }
                        }, if !client.gone => {
                            // Past the client's deadline: it has stopped
                            // listening; so does the model.
                            client.gone = true;
                            cancel.store(true, Ordering::Relaxed);
                            let _ = client.tx.try_send(Err(EngineError::DeadlineExceeded(
                                "the call's deadline passed; the generation was stopped".into(),
                            )));
                        }
                        event = events.recv() => match event {
                            Some(Event::Text(text)) => {
                                generated.push_str(&text);
                                if client.gone || stopped_early {
                                    continue;
                                }
                                if mode == AnswerMode::Generative {
                                    client.send(AskEvent::Delta(Delta::text(text.clone()))).await;
                                }
                                buffer.push(&text);
                                for sentence in buffer.complete() {
                                    if self.verify_sentence(&mut composer, &mut client, &sentence).await {
                                        stopped_early = true;
                                        cancel.store(true, Ordering::Relaxed);
                                        break;
                                    }
                                }
                            }
                            Some(Event::Done(f)) => {
                                finish = Some(f);
                                break;
                            }
                            // The generator failed (it logged why).
                            None => break,
                        },
                        _ = client.tx.closed(), if !client.gone => {
                            client.gone = true;
                            cancel.store(true, Ordering::Relaxed);
                        }
                    }
                }
                if !client.gone && !stopped_early {
                    for sentence in buffer.finish() {
                        self.verify_sentence(&mut composer, &mut client, &sentence)
                            .await;
                    }
                }
                if !client.gone {
                    if let Some(c) = composer.as_mut() {
                        let out = c.finish();
                        client.output(out).await;
                    }
                    let refused = composer.as_ref().is_some_and(Composer::refused);
                    if mode == AnswerMode::Grounded && (client.shown.is_empty() || refused) {
                        // Nothing supported is left to show.
                        reason = Some(AskFinish::NotSupported);
                        client
                            .send(AskEvent::Delta(Delta::text(NOT_FOUND_ANSWER)))
                            .await;
                    }
                }
            }
        }
        let reason = reason.unwrap_or(match finish {
            None => AskFinish::Failed,
            Some(_) if stopped_early => AskFinish::Stop,
            Some(f) => match f.reason {
                FinishReason::EndOfTurn => AskFinish::Stop,
                FinishReason::Length => AskFinish::Length,
                FinishReason::Stop => AskFinish::StopSequence,
                FinishReason::Cancelled => AskFinish::Cancelled,
            },
        });
        let reason =
            if client.gone && !matches!(reason, AskFinish::NoContext | AskFinish::NotSupported) {
                AskFinish::Cancelled
            } else {
                reason
            };
        self.record_answer(&run, client, composer.as_ref(), generated, finish, reason)
            .await;
    }

    /// Verifies one generated sentence and sends what the composer makes
    /// of it; returns whether generation should stop.
    async fn verify_sentence(
        &self,
        composer: &mut Option<Composer<'_>>,
        client: &mut Client,
        sentence: &str,
    ) -> bool {
        let Some(c) = composer.as_mut() else {
            return false;
        };
        let vector = self.sentence_vector(sentence).await;
        let (out, stop) = c.sentence(sentence, &vector);
        client.output(out).await;
        stop
    }

    /// Writes the record and sends the last event.
    async fn record_answer(
        &self,
        run: &Run,
        client: Client,
        composer: Option<&Composer<'_>>,
        generated: String,
        finish: Option<Finish>,
        reason: AskFinish,
    ) {
        let mode = run.req.answer_mode;
        let given = &run.prepared.given;
        // The citations of what was shown; markers the model wrote outside
        // the passages given count as invalid.
        let (numbers, _) = context::cited_numbers(&client.shown, given.len() as u32);
        let (_, invalid) = context::cited_numbers(&generated, given.len() as u32);
        let used: Vec<UsedCitation> = numbers
            .iter()
            .map(|n| {
                let g = &given[*n as usize - 1];
                UsedCitation {
                    number: *n,
                    chunk_id: g.hit.chunk_id,
                    document_id: g.hit.document_id.clone(),
                }
            })
            .collect();
        let (checks, share, replaced, dropped) = match composer {
            Some(c) => (
                c.checks().to_vec(),
                c.supported_share(),
                c.count(SentenceStatus::Replaced),
                c.count(SentenceStatus::Dropped),
            ),
            None => (Vec::new(), None, 0, 0),
        };
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
            first_token_ms: ms(client.first_text.unwrap_or(total)),
            total_ms: ms(total),
        };
        let evidence = run
            .grounding
            .as_ref()
            .map(Grounding::record)
            .unwrap_or_default();
        let record = Record {
            id: RecordId(0),
            created_at: quarry_core::now_ms(),
            collection: run.req.collection.to_string(),
            question: private(run.req.question.clone()),
            answer: private(client.shown.clone()),
            session_id: run.req.session_id.clone().unwrap_or_default(),
            principal: run.req.principal.clone(),
            retrieved: given
                .iter()
                .map(|g| RetrievedChunk {
                    chunk_id: g.hit.chunk_id,
                    document_id: g.hit.document_id.clone(),
                    score: g.hit.score,
                })
                .collect(),
            prompt: private(run.prompt.clone()),
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
            answer_mode: mode,
            generated_answer: private(generated),
            evidence: evidence
                .into_iter()
                .map(|mut e| {
                    e.text = private(e.text);
                    e
                })
                .collect(),
            sentences: checks
                .into_iter()
                .map(|mut c| {
                    c.generated = private(c.generated);
                    c.shown = private(c.shown);
                    c
                })
                .collect(),
            supported_share: share,
            replaced_sentences: replaced,
            dropped_sentences: dropped,
        };
        let before_store = Instant::now();
        let stored = self
            .blocking(move |inner| Ok(inner.disk.watch(inner.store.insert_record(record))?))
            .await;
        tracing::debug!(
            target: "quarry::timing",
            answer_ms = ms(total),
            record_ms = ms(before_store.elapsed()),
            "ask recorded"
        );
        let event = stored.map(|r| {
            AskEvent::Done(AskDone {
                record_id: r.id,
                finish: reason,
                prompt_tokens: r.prompt_tokens,
                answer_tokens: r.answer_tokens,
                timings,
                used,
                invalid_citations: invalid,
                model: run.model.clone(),
                answer_mode: mode,
                supported_share: share,
                replaced_sentences: replaced,
                dropped_sentences: dropped,
            })
        });
        if let Err(e) = &event {
            tracing::error!(error = %e, "the answer could not be recorded");
        }
        if !client.gone {
            let _ = client.tx.send(event).await;
        }
    }
}
