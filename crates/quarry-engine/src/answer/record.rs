//! The record of an Ask: what was asked, retrieved, prompted, shown and
//! verified, written to the store before the last event is sent.

use std::time::Instant;

use quarry_core::{Record, RecordId, RetrievedChunk, SentenceStatus, Timings, UsedCitation};
use quarry_generate::Finish;

use super::{Client, Run};
use crate::ask::{ms, params_json, AskDone, AskEvent, AskFinish};
use crate::grounding::{Composer, Grounding};
use crate::{context, Engine};

impl Engine {
    /// Writes the record and sends the last event.
    pub(super) async fn record_answer(
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
            .blocking(move |inner| inner.storage.records().insert(record))
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
