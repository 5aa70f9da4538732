//! The model threads and their queue.
//!
//! Requests wait in a bounded queue (a full queue is an immediate
//! [`EmbedError::QueueFull`], never an unbounded backlog). Each model thread
//! takes the first waiting request, then every other waiting request while
//! their tokens fit the batch budget, tokenises them, sorts all texts by
//! length so each forward pass pads little, runs the passes, and hands every
//! caller its vectors in its own order.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quarry_queue::{Queue, SubmitError, Taker};

use tokenizers::{Encoding, Tokenizer};
use tokio::sync::oneshot;

use crate::{EmbedError, Embedder, SentenceEmbedder};

/// Tuning of the queue and its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Model threads, each with its own model instance (weights are mapped
    /// once and shared by the OS).
    pub workers: usize,
    /// Requests that may wait; one more is refused.
    pub capacity: usize,
    /// Padded tokens (batch size times longest length) per forward pass.
    pub max_batch_tokens: usize,
    /// Compute threads each model thread may use for large products.
    pub threads_per_worker: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            capacity: 256,
            max_batch_tokens: 2048,
            threads_per_worker: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

type Outcome = Result<Vec<Vec<f32>>, EmbedError>;
type Reply = oneshot::Sender<Outcome>;

struct Job {
    texts: Vec<String>,
    reply: Reply,
}

/// A handle to the model threads. Clones share them; the threads stop when
/// the last handle is dropped.
#[derive(Clone)]
pub struct EmbedQueue {
    queue: Queue<Job>,
    /// Texts embedded since start.
    embedded: Arc<AtomicU64>,
    dimension: usize,
    max_seq_length: usize,
    counting_tokenizer: Arc<Tokenizer>,
}

impl EmbedQueue {
    /// Loads `config.workers` model instances from `dir` and starts their
    /// threads.
    pub fn start(dir: &Path, config: QueueConfig) -> Result<Self, EmbedError> {
        let models = (0..config.workers.max(1))
            .map(|_| {
                SentenceEmbedder::load(dir, config.threads_per_worker)
                    .map(|m| Box::new(m) as Box<dyn Embedder>)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_models(models, config)
    }

    /// Starts one thread per model instance given (any [`Embedder`]; at
    /// least one). `config.workers` is ignored: the models are the workers.
    pub fn with_models(
        models: Vec<Box<dyn Embedder>>,
        config: QueueConfig,
    ) -> Result<Self, EmbedError> {
        let Some(first) = models.first() else {
            return Err(EmbedError::Model(candle_core::Error::Msg(
                "an embedding queue needs at least one model".into(),
            )));
        };
        let dimension = first.dimension();
        let max_seq_length = first.max_seq_length();
        let mut counting_tokenizer = first.tokenizer().clone();
        counting_tokenizer.with_padding(None);
        counting_tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let embedded = Arc::new(AtomicU64::new(0));
        let budget = config.max_batch_tokens.max(max_seq_length);
        let workers = models
            .into_iter()
            .map(|model| (model, budget, Arc::clone(&embedded)))
            .collect();
        let queue =
            Queue::start("quarry-embed", config.capacity, workers, worker).map_err(|e| {
                EmbedError::Model(candle_core::Error::Msg(format!(
                    "cannot start a model thread: {e}"
                )))
            })?;
        Ok(Self {
            queue,
            embedded,
            dimension,
            max_seq_length,
            counting_tokenizer: Arc::new(counting_tokenizer),
        })
    }

    /// The model's tokenizer without padding or truncation, for measuring
    /// and cutting text in model tokens (chunking).
    pub fn counting_tokenizer(&self) -> Arc<Tokenizer> {
        Arc::clone(&self.counting_tokenizer)
    }

    /// How well the model's vocabulary covers `text`, 0 to 1
    /// ([`crate::coverage`]).
    pub fn coverage(&self, text: &str) -> f32 {
        crate::coverage::coverage(&self.counting_tokenizer, text)
    }

    /// Requests waiting for a model thread.
    pub fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// Texts embedded since the queue started.
    pub fn embedded_texts(&self) -> u64 {
        self.embedded.load(Ordering::Relaxed)
    }

    /// The vectors' dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Longest input in tokens; longer inputs are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    fn submit(&self, texts: Vec<String>) -> Result<oneshot::Receiver<Outcome>, EmbedError> {
        let (reply, rx) = oneshot::channel();
        match self.queue.submit(Job { texts, reply }) {
            Ok(()) => Ok(rx),
            Err(SubmitError::Full { capacity }) => Err(EmbedError::QueueFull { capacity }),
            Err(SubmitError::Stopped) => Err(EmbedError::Stopped),
        }
    }

    /// Embeds `texts`, in order. Waits without blocking the runtime.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(texts)?.await.map_err(|_| EmbedError::Stopped)?
    }

    /// Embeds `texts` from a thread that may block (loaders, benchmarks).
    pub fn embed_blocking(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(texts)?
            .blocking_recv()
            .map_err(|_| EmbedError::Stopped)?
    }
}

/// One model thread: every wake-up takes the waiting requests that
/// plausibly fit the token budget, without holding back the first.
fn worker((model, budget, embedded): (Box<dyn Embedder>, usize, Arc<AtomicU64>), jobs: Taker<Job>) {
    while let Some(batch) = jobs.next_batch(budget, |j| estimate_tokens(&j.texts)) {
        let texts: usize = batch.iter().map(|j| j.texts.len()).sum();
        run_jobs(model.as_ref(), batch, budget);
        embedded.fetch_add(texts as u64, Ordering::Relaxed);
    }
}

/// A cheap upper-ish estimate (about 4 bytes a token) used only to decide
/// how many requests to take at once.
fn estimate_tokens(texts: &[String]) -> usize {
    texts.iter().map(|t| t.len() / 4 + 2).sum()
}

/// The fixed cost of one forward pass, in padded tokens: what splitting a
/// batch must save in padding to be worth it.
const BATCH_OVERHEAD_TOKENS: usize = 32;

/// Splits texts of ascending token `lengths` into batches `[start, end)`
/// that each stay within `budget` padded tokens (batch size times its
/// longest text) and, together, cost the fewest padded tokens: one batch
/// of a 10-token sentence and a 90-token one pads the short one ninefold,
/// so mixed lengths go in separate passes when that is cheaper.
fn batches(lengths: &[usize], budget: usize) -> Vec<(usize, usize)> {
    let n = lengths.len();
    // cost[i]: the cheapest split of the first i texts; from[i]: where its
    // last batch starts.
    let mut cost = vec![usize::MAX; n + 1];
    let mut from = vec![0; n + 1];
    cost[0] = 0;
    for end in 1..=n {
        let longest = lengths[end - 1];
        for start in (0..end).rev() {
            let size = end - start;
            if size > 1 && size * longest > budget {
                break;
            }
            let c = cost[start].saturating_add(size * longest + BATCH_OVERHEAD_TOKENS);
            if c < cost[end] {
                cost[end] = c;
                from[end] = start;
            }
        }
    }
    let mut out = Vec::new();
    let mut end = n;
    while end > 0 {
        out.push((from[end], end));
        end = from[end];
    }
    out.reverse();
    out
}

fn run_jobs(model: &dyn Embedder, jobs: Vec<Job>, budget: usize) {
    // Tokenise each job; a job whose texts fail to tokenise fails alone.
    let mut live: Vec<(Reply, Vec<Encoding>)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
        match model.tokenize(&texts) {
            Ok(encodings) => live.push((job.reply, encodings)),
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    // Every text of every job, sorted by length to cut padding.
    let mut order: Vec<(usize, usize)> = live
        .iter()
        .enumerate()
        .flat_map(|(j, (_, encs))| (0..encs.len()).map(move |i| (j, i)))
        .collect();
    order.sort_by_key(|&(j, i)| live[j].1[i].len());

    let mut results: Vec<Vec<Option<Vec<f32>>>> = live
        .iter()
        .map(|(_, encs)| vec![None; encs.len()])
        .collect();
    let mut failure: Option<String> = None;
    let lengths: Vec<usize> = order
        .iter()
        .map(|&(j, i)| live[j].1[i].len().max(1))
        .collect();
    for (start, end) in batches(&lengths, budget) {
        let batch: Vec<&Encoding> = order[start..end]
            .iter()
            .map(|&(j, i)| &live[j].1[i])
            .collect();
        match model.embed_encodings(&batch) {
            Ok(vectors) => {
                for (&(j, i), v) in order[start..end].iter().zip(vectors) {
                    results[j][i] = Some(v);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedding batch failed");
                failure = Some(e.to_string());
                break;
            }
        }
    }
    for ((reply, _), vectors) in live.into_iter().zip(results) {
        let outcome = match (&failure, vectors.into_iter().collect::<Option<Vec<_>>>()) {
            (None, Some(all)) => Ok(all),
            (Some(e), _) => Err(EmbedError::Model(candle_core::Error::Msg(e.clone()))),
            (None, None) => Err(EmbedError::Model(candle_core::Error::Msg(
                "a batch produced no vector".into(),
            ))),
        };
        // The caller may have gone away; nothing to do then.
        let _ = reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_text_within_the_budget_and_cut_padding() {
        // Equal lengths: one pass.
        assert_eq!(batches(&[20; 10], 2048), [(0, 10)]);
        // Short and long texts: the short ones are not padded to the long.
        let mut lengths = vec![8; 12];
        lengths.extend([90, 95]);
        assert_eq!(batches(&lengths, 2048), [(0, 12), (12, 14)]);
        // The budget caps a batch; a text longer than the budget goes alone.
        let b = batches(&[100; 50], 1000);
        assert!(b.iter().all(|(s, e)| (e - s) * 100 <= 1000));
        assert_eq!(b.last().unwrap().1, 50);
        assert_eq!(batches(&[5000], 1000), [(0, 1)]);
        assert!(batches(&[], 1000).is_empty());
    }
}
