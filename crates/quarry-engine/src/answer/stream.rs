//! The answer's stream: generated text cut into sentences, each verified
//! (grounded and generative modes) and sent as the composer decides, the
//! client's departure noticed within a token, then the record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use quarry_core::AnswerMode;
use quarry_generate::{Event, Finish, FinishReason};
use tokio::sync::mpsc;

use super::{Client, Plan, Run};
use crate::ask::{AskEvent, AskFinish, Delta, NOT_FOUND_ANSWER};
use crate::grounding::{Composer, SentenceBuffer};
use crate::{Engine, EngineError, Result};

impl Engine {
    /// The vector of one generated sentence; an embedder that is busy or
    /// failing leaves it unverifiable by meaning (an empty vector), so
    /// only its facts and words can support it.
    pub(super) async fn sentence_vector(&self, sentence: &str) -> Vec<f32> {
        match self.embed_one(sentence).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "a generated sentence could not be embedded for verification");
                Vec::new()
            }
        }
    }

    /// Streams the answer to the client, then records it.
    pub(super) async fn stream_answer(
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
    pub(super) async fn verify_sentence(
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
}
