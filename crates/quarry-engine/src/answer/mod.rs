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
//!
//! This file decides the plan and grounds it; `stream.rs` streams and
//! verifies the answer, `record.rs` records it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_core::AnswerMode;
use quarry_generate::{Event, SamplingParams};
use quarry_index::{Fusion, Mode};
use tokio::sync::mpsc;

use crate::ask::{ms, sampling_params, snippet, validate, AskEvent, AskRequest, Citation, Delta};
use crate::grounding::{Grounding, Output};
use crate::prompt::{self, Prepared};
use crate::{search, Engine, EngineError, Result, SearchRequest};

mod record;
mod stream;

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
        let search = search::prepare(
            SearchRequest {
                collection: req.collection.clone(),
                query: req.question.clone(),
                top_k,
                mode: req.mode,
                filter: req.filter.clone(),
                fusion: Fusion::default(),
                sentence_weight: 0.0,
            },
            &self.inner.search_limits,
        )?;
        let prep_req = req.clone();
        let prep_gen = generator.clone();
        let max_new = params.max_new_tokens;
        let prep_vector = vector.clone();
        // Retrieval and the prompt in one blocking trip.
        let prepared = self
            .blocking(move |inner| {
                let dense = (prep_req.mode != Mode::Keyword).then_some(prep_vector.as_slice());
                // One lookup of the collection serves both.
                let coll = inner.storage.collection(&prep_req.collection)?;
                let hits = search::search_in(inner, &*coll, search, dense)?;
                prompt::prepare(
                    inner,
                    &*coll,
                    prep_gen.as_ref().map(|g| &g.queue),
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
}
