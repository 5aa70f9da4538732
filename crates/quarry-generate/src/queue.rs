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
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_core::InvalidArgument;
use tokio::sync::mpsc;

use crate::{
    read_gguf_metadata, vocab_from_gguf, ChatTemplate, Delta, GenerateError, LlamaModel, Message,
    Sampler, SamplingParams, TextStream, Vocab,
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
}

/// Events a slow reader may leave waiting before the generator waits.
const EVENT_BUFFER: usize = 64;

/// The generator: a model thread behind a bounded queue.
pub struct GenerateQueue {
    jobs: SyncSender<Job>,
    vocab: Arc<Vocab>,
    template: Option<ChatTemplate>,
    context_length: usize,
    capacity: usize,
}

impl GenerateQueue {
    /// Loads the GGUF file and starts its thread; `capacity` requests may
    /// wait.
    pub fn start(path: &Path, capacity: usize) -> Result<Self, GenerateError> {
        let vocab = Arc::new(vocab_from_gguf(&read_gguf_metadata(path)?)?);
        let model = LlamaModel::load(path)?;
        let template = match &vocab.chat_template {
            Some(source) => Some(ChatTemplate::new(
                source,
                vocab.bos.as_ref().map_or("", |(_, t)| t),
                vocab.eos.as_ref().map_or("", |(_, t)| t),
            )?),
            None => None,
        };
        let context_length = model.config().context_length;
        let (jobs, rx) = sync_channel(capacity.max(1));
        let thread_vocab = Arc::clone(&vocab);
        std::thread::Builder::new()
            .name("quarry-generate".into())
            .spawn(move || worker(&model, &thread_vocab, rx))
            .map_err(|e| {
                GenerateError::Model(format!("cannot start the generation thread: {e}"))
            })?;
        Ok(Self {
            jobs,
            vocab,
            template,
            context_length,
            capacity: capacity.max(1),
        })
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

    /// Queues a generation for `prompt` (already rendered); returns its
    /// events.
    pub fn submit(
        &self,
        prompt: &str,
        params: SamplingParams,
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
            if let Some((bos, _)) = &self.vocab.bos {
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
        match self.jobs.try_send(Job {
            prompt: ids,
            params,
            events,
        }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(GenerateError::QueueFull {
                capacity: self.capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(GenerateError::Model(
                "the generation thread has stopped".into(),
            )),
        }
    }
}

fn worker(model: &LlamaModel, vocab: &Vocab, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let finish = run(model, vocab, &job);
        match finish {
            Ok(finish) => {
                let _ = job.events.blocking_send(Event::Done(finish));
            }
            Err(e) => {
                tracing::error!(error = %e, "generation failed");
                // The receiver sees the channel close without Done.
            }
        }
    }
}

fn run(model: &LlamaModel, vocab: &Vocab, job: &Job) -> Result<Finish, GenerateError> {
    let started = Instant::now();
    let mut sampler = Sampler::new(job.params.clone());
    let mut stream = TextStream::new(&vocab.tokenizer, job.params.stop.clone());
    let mut cache = model.new_cache(job.prompt.len() + job.params.max_new_tokens);
    let mut recent: Vec<u32> = job.prompt.clone();
    let mut logits = model
        .forward(&job.prompt, &mut cache, true)?
        .unwrap_or_default();
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
        if job.events.is_closed() {
            return Ok(finish(FinishReason::Cancelled, generated, first));
        }
        logits = model
            .forward(&[token], &mut cache, true)?
            .unwrap_or_default();
    }
}
