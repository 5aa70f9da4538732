//! The generation thread's scheduler: continuous batching.
//!
//! Up to `batch` sequences are in flight, each with its own cache,
//! sampler, text stream and reader. Every step is one forward pass over
//! all of them: each decoding sequence brings the token it sampled last,
//! and prompts still being read bring slices of theirs, at most
//! `prefill_chunk` tokens a step while others are decoding, so that a long
//! prompt arriving never stops the answers already streaming for longer
//! than one slice. New requests join between steps; a sequence that
//! finishes, is cancelled or loses its reader leaves at once and frees its
//! slot and its cache.
//!
//! A sequence reserves its cache (prompt plus `max_new_tokens`) from the
//! [`KvBudget`] before it joins; the head of the queue waits while the
//! budget is full, and the queue behind it sheds when it is full itself.
//! A reader that cannot keep up pauses only its own sequence: events wait
//! in its outbox, and it steps again once they are delivered.
//!
//! Prompts that begin with a prefix recent prompts shared (an answer
//! mode's system prompt and example) start from a copy of its cache
//! ([`crate::prefix`]); kept prefixes give way when a request needs their
//! share of the budget.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_queue::{Taker, TryNext};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::decoder::{Sequence, Step};
use crate::kv_budget::{KvBudget, Reservation};
use crate::prefix::Prefixes;
use crate::queue::{Event, Finish, FinishReason, PREFILL_SLICE};
use crate::{Decoder, Delta, GenerateError, Sampler, SamplingParams, TextStream, Vocab};

/// One queued generation.
pub(crate) struct Job {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub events: mpsc::Sender<Event>,
    pub cancel: Arc<AtomicBool>,
    /// Cache bytes it may grow to.
    pub kv_bytes: usize,
}

impl Job {
    /// Whether the generation should stop: its reader left, or its owner
    /// asked (and still reads, to learn how far it got).
    fn cancelled(&self) -> bool {
        self.events.is_closed() || self.cancel.load(Ordering::Relaxed)
    }
}

/// How the scheduler runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Sequences in flight.
    pub batch: usize,
    /// Prompt tokens a step reads while other sequences are decoding.
    pub prefill_chunk: usize,
    /// Cache bytes all sequences may reserve together.
    pub kv_budget_bytes: usize,
}

/// Counters of the model thread since it started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub finished: AtomicU64,
    pub cancelled: AtomicU64,
    pub failed: AtomicU64,
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens not run because a kept prefix held them.
    pub prompt_tokens_cached: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Sequences in flight now.
    pub running: AtomicUsize,
    /// Cache bytes reserved now (sequences and kept prefixes).
    pub kv_reserved: AtomicUsize,
    /// Prefixes kept.
    pub prefixes: AtomicUsize,
    /// Forward passes run, and the sequences they carried (their ratio is
    /// the mean batch).
    pub steps: AtomicU64,
    pub stepped_sequences: AtomicU64,
}

/// Events on their way to one reader, in order.
struct Outbox {
    events: mpsc::Sender<Event>,
    pending: VecDeque<Event>,
}

impl Outbox {
    /// Queues `event` behind what is pending; `false` when the reader is
    /// gone.
    fn send(&mut self, event: Event) -> bool {
        self.pending.push_back(event);
        self.flush()
    }

    /// Delivers what the reader has room for; `false` when it is gone.
    fn flush(&mut self) -> bool {
        while let Some(event) = self.pending.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    return true;
                }
                Err(TrySendError::Closed(_)) => {
                    self.pending.clear();
                    return false;
                }
            }
        }
        !self.events.is_closed()
    }

    fn is_clear(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A sequence in flight.
struct Slot<'v> {
    prompt: Vec<u32>,
    max_new_tokens: usize,
    cancel: Arc<AtomicBool>,
    outbox: Outbox,
    sequence: Box<dyn Sequence>,
    sampler: Sampler,
    stream: TextStream<'v>,
    recent: Vec<u32>,
    /// Prompt tokens run so far.
    prefilled: usize,
    /// The token sampled last, to run next.
    next: u32,
    generated: usize,
    started: Instant,
    first: Option<Duration>,
    _kv: Reservation,
}

impl<'v> Slot<'v> {
    fn new(
        decoder: &dyn Decoder,
        vocab: &'v Vocab,
        job: Job,
        kv: Reservation,
        prefixes: &mut Prefixes,
    ) -> Self {
        let Job {
            prompt,
            params,
            events,
            cancel,
            ..
        } = job;
        let room = prompt.len() + params.max_new_tokens;
        let (sequence, prefilled) = prefixes
            .lookup(&prompt)
            .and_then(|(kept, len)| decoder.fork(kept, len, room).map(|s| (s, len)))
            .unwrap_or_else(|| (decoder.sequence(room), 0));
        Self {
            sequence,
            stream: TextStream::new(&vocab.tokenizer, params.stop.clone()),
            max_new_tokens: params.max_new_tokens,
            sampler: Sampler::new(params),
            recent: prompt.clone(),
            prompt,
            cancel,
            outbox: Outbox {
                events,
                pending: VecDeque::new(),
            },
            prefilled,
            next: 0,
            generated: 0,
            started: Instant::now(),
            first: None,
            _kv: kv,
        }
    }

    /// Its reader's outbox; the cache and the reservation go.
    fn into_outbox(self) -> Outbox {
        self.outbox
    }

    fn decoding(&self) -> bool {
        self.prefilled == self.prompt.len()
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.outbox.events.is_closed()
    }

    fn finish(&self, reason: FinishReason) -> Finish {
        let elapsed = self.started.elapsed();
        Finish {
            reason,
            prompt_tokens: self.prompt.len(),
            completion_tokens: self.generated,
            time_to_first_token: self.first.unwrap_or(elapsed),
            elapsed,
        }
    }

    /// Samples the next token from `logits` and streams it; `Some` when
    /// the generation ended with it.
    fn advance(
        &mut self,
        mut logits: Vec<f32>,
        vocab: &Vocab,
        counters: &Counters,
    ) -> Result<Option<FinishReason>, GenerateError> {
        let token = self.sampler.sample(&mut logits, &self.recent);
        self.first.get_or_insert_with(|| self.started.elapsed());
        if vocab.control.iter().any(|(id, _)| *id == token) {
            let rest = self.stream.finish();
            if !rest.is_empty() && !self.outbox.send(Event::Text(rest)) {
                return Ok(Some(FinishReason::Cancelled));
            }
            return Ok(Some(FinishReason::EndOfTurn));
        }
        self.generated += 1;
        counters.generated_tokens.fetch_add(1, Ordering::Relaxed);
        self.recent.push(token);
        let (text, stop) = match self.stream.push(token)? {
            Delta::Text(t) => (t, false),
            Delta::Stop(t) => (t, true),
        };
        if !text.is_empty() && !self.outbox.send(Event::Text(text)) {
            return Ok(Some(FinishReason::Cancelled));
        }
        if stop {
            return Ok(Some(FinishReason::Stop));
        }
        if self.generated >= self.max_new_tokens {
            let rest = self.stream.finish();
            if !rest.is_empty() && !self.outbox.send(Event::Text(rest)) {
                return Ok(Some(FinishReason::Cancelled));
            }
            return Ok(Some(FinishReason::Length));
        }
        self.next = token;
        Ok(None)
    }
}

/// How a slot left the batch.
enum Exit {
    Finished(FinishReason),
    Failed,
}

/// The generation thread: runs until every queue handle is gone and the
/// last sequence has left.
pub(crate) fn run(
    decoder: &dyn Decoder,
    vocab: &Vocab,
    counters: &Counters,
    limits: Limits,
    jobs: &Taker<Job>,
) {
    crate::priority::lower_this_thread();
    let budget = KvBudget::new(limits.kv_budget_bytes);
    let mut prefixes = Prefixes::default();
    let mut slots: Vec<Slot<'_>> = Vec::new();
    // The queue's head while the budget has no room for it.
    let mut held: Option<Job> = None;
    // Readers of ended sequences still to get their last events.
    let mut draining: Vec<Outbox> = Vec::new();
    let mut open = true;
    loop {
        // Admission, in queue order.
        while open && slots.len() < limits.batch.max(1) {
            let job = match held.take() {
                Some(job) => job,
                None if slots.is_empty() && draining.is_empty() => match jobs.next() {
                    Some(job) => job,
                    None => return,
                },
                None => match jobs.try_next() {
                    TryNext::Job(job) => job,
                    TryNext::Empty => break,
                    TryNext::Closed => {
                        open = false;
                        break;
                    }
                },
            };
            if job.cancelled() {
                counters.cancelled.fetch_add(1, Ordering::Relaxed);
                let mut outbox = Outbox {
                    events: job.events,
                    pending: VecDeque::new(),
                };
                let finish = Finish {
                    reason: FinishReason::Cancelled,
                    prompt_tokens: job.prompt.len(),
                    completion_tokens: 0,
                    time_to_first_token: Duration::ZERO,
                    elapsed: Duration::ZERO,
                };
                if outbox.send(Event::Done(finish)) && !outbox.is_clear() {
                    draining.push(outbox);
                }
                continue;
            }
            // Kept prefixes give way to a request.
            let mut kv = budget.try_reserve(job.kv_bytes);
            while kv.is_none() && prefixes.evict() {
                kv = budget.try_reserve(job.kv_bytes);
            }
            match kv {
                Some(kv) => {
                    let slot = Slot::new(decoder, vocab, job, kv, &mut prefixes);
                    counters
                        .prompt_tokens_cached
                        .fetch_add(slot.prefilled as u64, Ordering::Relaxed);
                    slots.push(slot);
                }
                None => {
                    held = Some(job);
                    break;
                }
            }
        }
        if !open && slots.is_empty() && held.is_none() && draining.is_empty() {
            return;
        }
        counters.running.store(slots.len(), Ordering::Relaxed);
        counters.kv_reserved.store(budget.used(), Ordering::Relaxed);
        draining.retain_mut(|o| o.flush() && !o.is_clear());

        // Who leaves before the step: cancelled, or their reader gone.
        let mut exits: Vec<(usize, Exit)> = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if !slot.outbox.flush() || slot.cancelled() {
                exits.push((i, Exit::Finished(FinishReason::Cancelled)));
            }
        }
        leave(&mut slots, exits, &mut draining, counters, &budget);

        // The step: every decoding sequence whose reader keeps up, and
        // prompt slices within the step's prefill allowance.
        let decoders = slots
            .iter()
            .filter(|s| s.decoding() && s.outbox.is_clear())
            .count();
        let mut allowance = if decoders > 0 {
            limits.prefill_chunk.max(1)
        } else {
            PREFILL_SLICE.max(limits.prefill_chunk)
        };
        let mut plan: Vec<(usize, usize)> = Vec::new(); // (slot, prompt tokens)
        for (i, slot) in slots.iter().enumerate() {
            if !slot.outbox.is_clear() {
                continue;
            }
            if slot.decoding() {
                plan.push((i, 0));
            } else if allowance > 0 {
                let take = (slot.prompt.len() - slot.prefilled).min(allowance);
                allowance -= take;
                plan.push((i, take));
            }
        }
        if plan.is_empty() {
            if !slots.is_empty() || !draining.is_empty() || held.is_some() {
                // Every reader is behind: wait for one to catch up.
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }

        let mut planned = plan.iter().peekable();
        let mut steps: Vec<Step<'_>> = Vec::with_capacity(plan.len());
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(&(_, take)) = planned.next_if(|(p, _)| *p == i) else {
                continue;
            };
            let (tokens, logits) = if take == 0 {
                (std::slice::from_ref(&slot.next), true)
            } else {
                let end = slot.prefilled + take;
                (&slot.prompt[slot.prefilled..end], end == slot.prompt.len())
            };
            steps.push(Step {
                sequence: slot.sequence.as_mut(),
                tokens,
                logits,
            });
        }
        let result = decoder.forward(&mut steps);
        drop(steps);
        counters.steps.fetch_add(1, Ordering::Relaxed);
        counters
            .stepped_sequences
            .fetch_add(plan.len() as u64, Ordering::Relaxed);

        let mut exits = Vec::new();
        match result {
            Ok(outputs) => {
                for (&(i, take), logits) in plan.iter().zip(outputs) {
                    let slot = &mut slots[i];
                    slot.prefilled += take;
                    counters
                        .prompt_tokens
                        .fetch_add(take as u64, Ordering::Relaxed);
                    if take > 0 && slot.decoding() {
                        keep_prefix(decoder, slot, &mut prefixes, &budget);
                        counters.prefixes.store(prefixes.len(), Ordering::Relaxed);
                    }
                    let Some(logits) = logits else { continue };
                    match slot.advance(logits, vocab, counters) {
                        Ok(None) => {}
                        Ok(Some(reason)) => exits.push((i, Exit::Finished(reason))),
                        Err(e) => {
                            tracing::error!(error = %e, "generation failed");
                            exits.push((i, Exit::Failed));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, sequences = plan.len(), "generation step failed");
                exits.extend(plan.iter().map(|&(i, _)| (i, Exit::Failed)));
            }
        }
        leave(&mut slots, exits, &mut draining, counters, &budget);
        counters.kv_reserved.store(budget.used(), Ordering::Relaxed);
    }
}

/// When `slot` has just read its prompt: keeps the prefix it shares with
/// recent prompts, if that is worth keeping and the budget has room.
fn keep_prefix(
    decoder: &dyn Decoder,
    slot: &mut Slot<'_>,
    prefixes: &mut Prefixes,
    budget: &KvBudget,
) {
    let Some(len) = prefixes.worth_keeping(&slot.prompt) else {
        return;
    };
    let Some(kv) = budget.try_reserve(len.saturating_mul(decoder.kv_bytes_per_token())) else {
        return;
    };
    if let Some(copy) = decoder.fork(slot.sequence.as_mut(), len, len) {
        prefixes.keep(slot.prompt[..len].to_vec(), copy, kv);
    }
}

/// Removes the slots in `exits` (ascending indexes), counting each and
/// sending `Done` to those that finished. Their caches and reservations
/// are freed, and the counters say so, before `Done` goes out: a reader
/// that sees its end sees the slot free.
fn leave(
    slots: &mut Vec<Slot<'_>>,
    exits: Vec<(usize, Exit)>,
    draining: &mut Vec<Outbox>,
    counters: &Counters,
    budget: &KvBudget,
) {
    for (i, exit) in exits.into_iter().rev() {
        let slot = slots.remove(i);
        let finish = match exit {
            Exit::Finished(reason) => Some(slot.finish(reason)),
            Exit::Failed => None,
        };
        let mut outbox = slot.into_outbox();
        counters.running.store(slots.len(), Ordering::Relaxed);
        counters.kv_reserved.store(budget.used(), Ordering::Relaxed);
        match finish {
            Some(finish) => {
                let counter = if finish.reason == FinishReason::Cancelled {
                    &counters.cancelled
                } else {
                    &counters.finished
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if outbox.send(Event::Done(finish)) && !outbox.is_clear() {
                    draining.push(outbox);
                }
            }
            // The reader sees its channel close without Done.
            None => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
