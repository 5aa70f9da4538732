//! The generation thread and its queue.
//!
//! One thread owns the decoder; requests wait in a bounded queue (full is
//! an immediate [`GenerateError::QueueFull`]). Prompts are rendered and
//! tokenized by the caller, so a prompt that does not fit the context
//! window fails at once with both lengths, before it waits. Each request
//! gets its events through its own bounded channel; when the receiver is
//! dropped (the client went away) the thread stops that generation after
//! the token in progress.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_core::InvalidArgument;
use quarry_queue::{Queue, SubmitError, Taker};
use tokio::sync::mpsc;

use crate::{
    ChatTemplate, Decoder, Delta, GenerateError, LlamaModel, Message, ModelFormat, Sampler,
    SamplingParams, TextStream, Vocab,
};

/// Events of one generation, in order: text deltas, then one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// More text.
    Text(String),
    /// The end.
    Done(Finish),
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    EndOfTurn,
    /// A stop sequence appeared.
    Stop,
    /// `max_new_tokens` were generated.
    Length,
    /// The receiver went away.
    Cancelled,
}

/// How a generation went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finish {
    /// Why it ended.
    pub reason: FinishReason,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// From the start of the work (not the wait in the queue) to the first
    /// token.
    pub time_to_first_token: Duration,
    /// The whole generation.
    pub elapsed: Duration,
}

struct Job {
    prompt: Vec<u32>,
    params: SamplingParams,
    events: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
}

impl Job {
    /// Whether the generation should stop: its reader left, or its owner
    /// asked (and still reads, to learn how far it got).
    fn cancelled(&self) -> bool {
        self.events.is_closed() || self.cancel.load(Ordering::Relaxed)
    }
}

/// Prompt tokens per forward pass of the prefill: large enough that each
/// weight row is read once for many tokens, small enough that a
/// cancelled request stops within a fraction of a second.
pub const PREFILL_SLICE: usize = 256;

/// Events a slow reader may leave waiting before the generator waits.
const EVENT_BUFFER: usize = 64;

/// Counters of the model thread since it started.
#[derive(Debug, Default)]
struct Counters {
    finished: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
}

/// What the model thread has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests waiting for the model thread.
    pub waiting: u64,
    /// Generations that ended normally (end of turn, stop, length).
    pub finished: u64,
    /// Generations whose reader went away.
    pub cancelled: u64,
    /// Generations that failed.
    pub failed: u64,
    /// Prompt tokens run through the model (a cancelled prefill counts
    /// what it ran).
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
}

/// The generator: a model thread behind a bounded queue.
pub struct GenerateQueue {
    counters: Arc<Counters>,
    jobs: Queue<Job>,
    vocab: Arc<Vocab>,
    template: Option<ChatTemplate>,
    /// The control tokens' texts, longest first.
    control_texts: Vec<String>,
    context_length: usize,
}

impl GenerateQueue {
    /// Loads the model (a GGUF file, a folder holding one, or a
    /// safetensors folder) and starts its thread; `capacity` requests may
    /// wait.
    pub fn start(path: &Path, capacity: usize) -> Result<Self, GenerateError> {
        let format = ModelFormat::detect(path)?;
        let vocab = format.vocab()?;
        let model = match &format {
            ModelFormat::Gguf(file) => LlamaModel::load_gguf(file)?,
            ModelFormat::Safetensors(dir) => LlamaModel::load_safetensors(dir)?,
        };
        Self::with_model(Box::new(model), vocab, capacity)
    }

    /// Starts the generation thread for any [`Decoder`] with its `vocab`
    /// (tokenizer, control tokens, chat template); `capacity` requests may
    /// wait.
    pub fn with_model(
        model: Box<dyn Decoder>,
        vocab: Vocab,
        capacity: usize,
    ) -> Result<Self, GenerateError> {
        let vocab = Arc::new(vocab);
        let template = match &vocab.chat_template {
            Some(source) => Some(ChatTemplate::new(
                source,
                vocab.bos.as_ref().map_or("", |(_, t)| t),
                vocab.eos.as_ref().map_or("", |(_, t)| t),
            )?),
            None => None,
        };
        let context_length = model.context_length();
        let mut control_texts: Vec<String> = vocab.control.iter().map(|(_, t)| t.clone()).collect();
        control_texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let counters = Arc::new(Counters::default());
        // One model thread, one generation at a time.
        let worker = (model, Arc::clone(&vocab), Arc::clone(&counters));
        let jobs =
            Queue::start("quarry-generate", capacity, vec![worker], worker_loop).map_err(|e| {
                GenerateError::Model(format!("cannot start the generation thread: {e}"))
            })?;
        Ok(Self {
            counters,
            jobs,
            vocab,
            template,
            control_texts,
            context_length,
        })
    }

    /// What the model thread has done so far.
    pub fn stats(&self) -> QueueStats {
        let c = &self.counters;
        QueueStats {
            waiting: self.jobs.waiting() as u64,
            finished: c.finished.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            generated_tokens: c.generated_tokens.load(Ordering::Relaxed),
        }
    }

    /// The model's context window, in tokens.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Renders `messages` with the model's chat template (opening the
    /// assistant's turn).
    pub fn render(&self, messages: &[Message]) -> Result<String, GenerateError> {
        let template = self
            .template
            .as_ref()
            .ok_or_else(|| GenerateError::Model("the model has no chat template".into()))?;
        template.render(messages, true)
    }

    /// `text` made safe to render into a prompt: the model's control
    /// tokens in it no longer tokenize as such ([`crate::defuse`]).
    pub fn defuse<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        crate::defuse(text, &self.control_texts)
    }

    /// The token count of `text` as a prompt would hold it (no BOS).
    pub fn count_tokens(&self, text: &str) -> Result<usize, GenerateError> {
        Ok(self
            .vocab
            .tokenizer
            .encode(text, false)
            .map_err(|e| GenerateError::Tokenizer(e.to_string()))?
            .len())
    }

    /// Queues a generation for `prompt` (already rendered); returns its
    /// events.
    pub fn submit(
        &self,
        prompt: &str,
        params: SamplingParams,
    ) -> Result<mpsc::Receiver<Event>, GenerateError> {
        self.submit_cancellable(prompt, params, Arc::new(AtomicBool::new(false)))
    }

    /// As [`submit`](Self::submit); setting `cancel` stops the generation
    /// within one token (or one prefill slice) and it ends with
    /// [`FinishReason::Cancelled`] and its counts, which dropping the
    /// receiver would not deliver.
    pub fn submit_cancellable(
        &self,
        prompt: &str,
        params: SamplingParams,
        cancel: Arc<AtomicBool>,
    ) -> Result<mpsc::Receiver<Event>, GenerateError> {
        params.validate("")?;
        let mut ids: Vec<u32> = self
            .vocab
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| GenerateError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec();
        if self.vocab.add_bos {
            // A template that writes the BOS token itself (llama 3's) must
            // not get a second one.
            if let Some((bos, _)) = self
                .vocab
                .bos
                .as_ref()
                .filter(|(b, _)| ids.first() != Some(b))
            {
                ids.insert(0, *bos);
            }
        }
        if ids.is_empty() {
            return Err(InvalidArgument::new("prompt", "is empty").into());
        }
        if ids.len() + params.max_new_tokens > self.context_length {
            return Err(InvalidArgument::new(
                "prompt",
                format!(
                    "is {} tokens and max_new_tokens is {}; together they exceed the model's context window of {} tokens",
                    ids.len(),
                    params.max_new_tokens,
                    self.context_length
                ),
            )
            .into());
        }
        let (events, rx) = mpsc::channel(EVENT_BUFFER);
        match self.jobs.submit(Job {
            prompt: ids,
            params,
            events,
            cancel,
        }) {
            Ok(()) => Ok(rx),
            Err(SubmitError::Full { capacity }) => Err(GenerateError::QueueFull { capacity }),
            Err(SubmitError::Stopped) => Err(GenerateError::Model(
                "the generation thread has stopped".into(),
            )),
        }
    }
}

/// The generation thread: one job at a time, in order.
fn worker_loop(
    (model, vocab, counters): (Box<dyn Decoder>, Arc<Vocab>, Arc<Counters>),
    jobs: Taker<Job>,
) {
    while let Some(batch) = jobs.next_batch(1, |_| 1) {
        for job in batch {
            worker(model.as_ref(), &vocab, &counters, job);
        }
    }
}

fn worker(model: &dyn Decoder, vocab: &Vocab, counters: &Counters, job: Job) {
    match run(model, vocab, counters, &job) {
        Ok(finish) => {
            let counter = if finish.reason == FinishReason::Cancelled {
                &counters.cancelled
            } else {
                &counters.finished
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = job.events.blocking_send(Event::Done(finish));
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "generation failed");
            // The receiver sees the channel close without Done.
        }
    }
}

fn run(
    model: &dyn Decoder,
    vocab: &Vocab,
    counters: &Counters,
    job: &Job,
) -> Result<Finish, GenerateError> {
    let started = Instant::now();
    let mut sampler = Sampler::new(job.params.clone());
    let mut stream = TextStream::new(&vocab.tokenizer, job.params.stop.clone());
    let mut session = model.session(job.prompt.len() + job.params.max_new_tokens);
    let mut recent: Vec<u32> = job.prompt.clone();
    // The prompt goes through in slices, so that a client that leaves
    // during a long prefill frees the thread within one slice.
    let mut logits = Vec::new();
    let mut slices = job.prompt.chunks(PREFILL_SLICE).peekable();
    while let Some(slice) = slices.next() {
        if job.cancelled() {
            return Ok(Finish {
                reason: FinishReason::Cancelled,
                prompt_tokens: job.prompt.len(),
                completion_tokens: 0,
                time_to_first_token: started.elapsed(),
                elapsed: started.elapsed(),
            });
        }
        let last = slices.peek().is_none();
        logits = session.forward(slice, last)?.unwrap_or_default();
        counters
            .prompt_tokens
            .fetch_add(slice.len() as u64, Ordering::Relaxed);
    }
    let mut first = None;
    let mut generated = 0;
    let finish = |reason, generated, first: Option<Duration>| Finish {
        reason,
        prompt_tokens: job.prompt.len(),
        completion_tokens: generated,
        time_to_first_token: first.unwrap_or_else(|| started.elapsed()),
        elapsed: started.elapsed(),
    };
    loop {
        let token = sampler.sample(&mut logits, &recent);
        first.get_or_insert_with(|| started.elapsed());
        if vocab.control.iter().any(|(id, _)| *id == token) {
            let rest = stream.finish();
            if !rest.is_empty() && job.events.blocking_send(Event::Text(rest)).is_err() {
                return Ok(finish(FinishReason::Cancelled, generated, first));
            }
            return Ok(finish(FinishReason::EndOfTurn, generated, first));
        }
        generated += 1;
        counters.generated_tokens.fetch_add(1, Ordering::Relaxed);
        recent.push(token);
        let (text, stop) = match stream.push(token)? {
            Delta::Text(t) => (t, false),
            Delta::Stop(t) => (t, true),
        };
        if !text.is_empty() && job.events.blocking_send(Event::Text(text)).is_err() {
            return Ok(finish(FinishReason::Cancelled, generated, first));
        }
        if stop {
            return Ok(finish(FinishReason::Stop, generated, first));
        }
        if generated >= job.params.max_new_tokens {
            let rest = stream.finish();
            if !rest.is_empty() && job.events.blocking_send(Event::Text(rest)).is_err() {
                return Ok(finish(FinishReason::Cancelled, generated, first));
            }
            return Ok(finish(FinishReason::Length, generated, first));
        }
        if job.cancelled() {
            return Ok(finish(FinishReason::Cancelled, generated, first));
        }
        logits = session.forward(&[token], true)?.unwrap_or_default();
    }
}
