//! The generation thread and its queue.
//!
//! One thread owns the decoder and runs up to `batch` generations at once
//! ([`crate::batch`], continuous batching); requests wait in a bounded
//! queue (full is an immediate [`GenerateError::QueueFull`]). Prompts are
//! rendered and tokenized by the caller, so a prompt that does not fit the
//! context window, or whose cache could never fit the cache budget, fails
//! at once with the lengths, before it waits. Each request gets its events
//! through its own bounded channel; when the receiver is dropped (the
//! client went away) its sequence leaves the batch after the step in
//! progress.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quarry_core::InvalidArgument;
use quarry_queue::{Queue, SubmitError, Taker};
use tokio::sync::mpsc;

use crate::batch::{Counters, Job, Limits};
use crate::{
    ChatTemplate, Decoder, GenerateError, LlamaModel, Message, ModelFormat, SamplingParams, Vocab,
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

/// Prompt tokens per forward pass of a prefill while no other sequence is
/// decoding: large enough that each weight row is read once for many
/// tokens, small enough that a cancelled request stops within a fraction
/// of a second.
pub const PREFILL_SLICE: usize = 256;

/// How the generation thread batches and what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateConfig {
    /// Requests that may wait for a place in the batch.
    pub queue_capacity: usize,
    /// Sequences decoded together.
    pub batch: usize,
    /// Prompt tokens a step reads while other sequences are decoding.
    pub prefill_chunk: usize,
    /// Cache bytes all sequences in flight may reserve together.
    pub kv_budget_bytes: usize,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 16,
            batch: DEFAULT_BATCH,
            prefill_chunk: DEFAULT_PREFILL_CHUNK,
            kv_budget_bytes: DEFAULT_KV_BUDGET_MIB << 20,
        }
    }
}

/// Sequences decoded together unless configured (see docs/performance.md
/// for the measurement behind it).
pub const DEFAULT_BATCH: usize = 8;

/// Prompt tokens per step beside decoding sequences unless configured.
pub const DEFAULT_PREFILL_CHUNK: usize = 128;

/// The cache budget unless configured, in MiB.
pub const DEFAULT_KV_BUDGET_MIB: usize = 1024;

/// Events a slow reader may leave waiting before the generator waits.
const EVENT_BUFFER: usize = 64;

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
    /// Prompt tokens not run because a kept prefix's cache held them.
    pub prompt_tokens_cached: u64,
    /// Sequences in the batch now.
    pub running: u64,
    /// Cache bytes reserved by them and by the kept prefixes.
    pub kv_reserved_bytes: u64,
    /// Prompt prefixes whose cache is kept.
    pub prefixes: u64,
    /// The cache budget.
    pub kv_budget_bytes: u64,
    /// Forward passes run.
    pub steps: u64,
    /// Sequences those passes carried, summed (divided by `steps`: the
    /// mean batch).
    pub stepped_sequences: u64,
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
    kv_bytes_per_token: usize,
    config: GenerateConfig,
}

impl GenerateQueue {
    /// Loads the model (a GGUF file, a folder holding one, or a
    /// safetensors folder) and starts its thread.
    pub fn start(path: &Path, config: GenerateConfig) -> Result<Self, GenerateError> {
        let format = ModelFormat::detect(path)?;
        let vocab = format.vocab()?;
        let model = match &format {
            ModelFormat::Gguf(file) => LlamaModel::load_gguf(file)?,
            ModelFormat::Safetensors(dir) => LlamaModel::load_safetensors(dir)?,
        };
        Self::with_model(Box::new(model), vocab, config)
    }

    /// Starts the generation thread for any [`Decoder`] with its `vocab`
    /// (tokenizer, control tokens, chat template).
    pub fn with_model(
        model: Box<dyn Decoder>,
        vocab: Vocab,
        config: GenerateConfig,
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
        let kv_bytes_per_token = model.kv_bytes_per_token();
        let mut control_texts: Vec<String> = vocab.control.iter().map(|(_, t)| t.clone()).collect();
        control_texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let counters = Arc::new(Counters::default());
        // One model thread; the batch is its own.
        let limits = Limits {
            batch: config.batch.max(1),
            prefill_chunk: config.prefill_chunk.max(1),
            kv_budget_bytes: config.kv_budget_bytes,
        };
        let worker = (model, Arc::clone(&vocab), Arc::clone(&counters), limits);
        let jobs = Queue::start(
            "quarry-generate",
            config.queue_capacity,
            vec![worker],
            worker_loop,
        )
        .map_err(|e| GenerateError::Model(format!("cannot start the generation thread: {e}")))?;
        Ok(Self {
            counters,
            jobs,
            vocab,
            template,
            control_texts,
            context_length,
            kv_bytes_per_token,
            config,
        })
    }

    /// How it batches.
    pub fn config(&self) -> GenerateConfig {
        self.config
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
            prompt_tokens_cached: c.prompt_tokens_cached.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed) as u64,
            prefixes: c.prefixes.load(Ordering::Relaxed) as u64,
            kv_reserved_bytes: c.kv_reserved.load(Ordering::Relaxed) as u64,
            kv_budget_bytes: self.config.kv_budget_bytes as u64,
            steps: c.steps.load(Ordering::Relaxed),
            stepped_sequences: c.stepped_sequences.load(Ordering::Relaxed),
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
        let tokens = ids.len() + params.max_new_tokens;
        let kv_bytes = tokens.saturating_mul(self.kv_bytes_per_token);
        if kv_bytes > self.config.kv_budget_bytes {
            return Err(GenerateError::KvBudget {
                tokens,
                needed_mib: kv_bytes.div_ceil(1 << 20),
                budget_mib: self.config.kv_budget_bytes >> 20,
            });
        }
        let (events, rx) = mpsc::channel(EVENT_BUFFER);
        match self.jobs.submit(Job {
            prompt: ids,
            params,
            events,
            cancel,
            kv_bytes,
        }) {
            Ok(()) => Ok(rx),
            Err(SubmitError::Full { capacity }) => Err(GenerateError::QueueFull { capacity }),
            Err(SubmitError::Stopped) => Err(GenerateError::Model(
                "the generation thread has stopped".into(),
            )),
        }
    }
}

/// The generation thread.
fn worker_loop(
    (model, vocab, counters, limits): (Box<dyn Decoder>, Arc<Vocab>, Arc<Counters>, Limits),
    jobs: Taker<Job>,
) {
    crate::batch::run(model.as_ref(), &vocab, &counters, limits, &jobs);
}
