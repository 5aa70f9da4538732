//! Quarry's own llama-family decoder (llama, qwen2), token by token or a
//! whole prompt at once on the CPU, from GGUF files ([`gguf`]) or
//! safetensors folders ([`safetensors`]). Q4_1 and Q8_0 weights run as
//! they are; other formats (F16, BF16, F32, K-quants) are converted to
//! Q8_0 when loaded.
//!
//! It follows llama.cpp's CPU numerics step by step (see [`quant`]):
//! activations quantized per 32-block before each quantized matrix, the KV
//! cache in f16, queries and attention weights rounded to f16 before their
//! products (ggml converts the f32 operand of an f16 matrix product), the
//! attention sums accumulated in 16 lanes and reduced pairwise as ggml's
//! AVX-512 kernels do, norms and softmax sums in f64, RoPE angles advanced
//! by repeated multiplication. With these, next-token logits equal
//! llama.cpp's to four decimals on short inputs; candle-transformers'
//! quantized llama (f32 everywhere) differed by up to 0.4 and left
//! llama.cpp's greedy path after 5 to 9 tokens on 4 of 5 test prompts.
//! The softmax and SiLU use ggml's own vectorised exp ([`vexp`]); see
//! tests/generate/greedy.rs for what still differs.
//!
//! Matrix products and prompt attention split across a spinning thread
//! team ([`team`]); a prompt goes through in one batch, so each weight row
//! meets every prompt token while it is in cache.

mod attention;
mod forward;
pub mod gguf;
mod matrix;
pub mod quant;
pub mod safetensors;
mod team;
mod vexp;

use crate::GenerateError;
pub use forward::BatchStep;
use matrix::Matrix;
use quant::{quantize_row, Q8Block, QK};
use team::Team;

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Consecutive pairs (0,1), (2,3)...: llama GGUF files, whose q and k
    /// rows the converter permuted for it.
    Interleaved,
    /// The first half against the second (Hugging Face's rotate_half,
    /// ggml's NEOX): qwen2 GGUF files and every safetensors model.
    Halves,
}

/// Shape and hyper-parameters, from GGUF metadata or config.json.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer).
    pub n_head_kv: usize,
    /// Feed-forward size.
    pub n_ff: usize,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// RMS norm epsilon.
    pub eps: f32,
    /// Context window.
    pub context_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
}

impl Config {
    fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Refuses shapes the decoder cannot run.
    fn check(&self) -> Result<(), GenerateError> {
        let ok = self.n_layer > 0
            && self.n_head > 0
            && self.n_head_kv > 0
            && self.n_embd.is_multiple_of(self.n_head)
            && self.n_head.is_multiple_of(self.n_head_kv)
            && self.head_dim().is_multiple_of(2)
            && self.n_embd.is_multiple_of(QK)
            && self.n_ff.is_multiple_of(QK)
            && self.vocab_size > 0
            && self.context_length > 0;
        if ok {
            Ok(())
        } else {
            Err(GenerateError::Model(format!(
                "unsupported shape {self:?}: head counts must divide evenly, and the hidden and feed-forward sizes must be multiples of {}",
                QK
            )))
        }
    }

    fn kv_dim(&self) -> usize {
        self.head_dim() * self.n_head_kv
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    /// qwen2's projection biases.
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The decoder's weights.
pub struct LlamaModel {
    config: Config,
    embedding: Matrix,
    /// `None`: tied to the embedding.
    output: Option<Matrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Per rotated pair, a divisor of its angle (llama 3's long-context
    /// frequency scaling); `None`: all 1.
    rope_factors: Option<Vec<f32>>,
}

/// The attention state of one sequence. Keys and values are held as f16
/// (their bits), as llama.cpp's cache holds them: half the bytes of f32,
/// and the attention kernels convert them back exactly as they load them.
#[derive(Clone)]
pub struct KvCache {
    /// Per layer: keys, position-major (`len * kv_dim`), f16 bits.
    k: Vec<Vec<u16>>,
    /// Per layer: values, position-major, f16 bits.
    v: Vec<Vec<u16>>,
    len: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of its first `len` tokens (at most all of them), with room
    /// for `room` tokens.
    pub fn prefix(&self, len: usize, room: usize) -> KvCache {
        let len = len.min(self.len);
        let copy = |layers: &[Vec<u16>]| -> Vec<Vec<u16>> {
            layers
                .iter()
                .map(|b| {
                    let width = b.len().checked_div(self.len).unwrap_or(0);
                    let mut out = Vec::with_capacity(room.max(len) * width);
                    out.extend_from_slice(&b[..len * width]);
                    out
                })
                .collect()
        };
        KvCache {
            k: copy(&self.k),
            v: copy(&self.v),
            len,
        }
    }

    /// Bytes its buffers hold (what they have room for, not only what is
    /// filled).
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(|b| b.capacity() * std::mem::size_of::<u16>())
            .sum()
    }
}

/// The names of a model's tensors, independent of the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Embedding,
    /// The output projection; absent when tied to the embedding.
    Output,
    OutputNorm,
    /// llama 3's RoPE frequency divisors (GGUF only).
    RopeFactors,
    Layer(usize, Part),
}

/// A tensor of one transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    AttnNorm,
    Q,
    K,
    V,
    QBias,
    KBias,
    VBias,
    Output,
    FfnNorm,
    Gate,
    Up,
    Down,
}

/// Where the decoder's weights come from: a GGUF file or a safetensors
/// folder. `None` when the file has no such tensor.
trait Weights {
    /// A `[rows, cols]` matrix.
    fn matrix(&self, name: Name, rows: usize, cols: usize)
        -> Result<Option<Matrix>, GenerateError>;
    /// A vector of `len` values.
    fn vector(&self, name: Name, len: usize) -> Result<Option<Vec<f32>>, GenerateError>;
}

fn required<T>(value: Option<T>, name: Name) -> Result<T, GenerateError> {
    value.ok_or_else(|| GenerateError::Model(format!("the model has no {name:?} tensor")))
}

/// x * (1 / sqrt(mean(x²) + eps)) * weight, as ggml's rms_norm then mul.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|v| (*v as f64) * (*v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * scale) * w;
    }
}

/// Rotates each head by position, as ggml's rope (angles advanced by
/// repeated multiplication, divided by the pair's frequency factor).
fn rope(
    x: &mut [f32],
    head_dim: usize,
    pos: usize,
    base: f32,
    style: RopeStyle,
    factors: Option<&[f32]>,
) {
    let theta_scale = base.powf(-2.0 / head_dim as f32);
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        let mut theta = pos as f32;
        for i in 0..half {
            let angle = match factors {
                Some(f) => theta / f[i],
                None => theta,
            };
            let (sin, cos) = angle.sin_cos();
            let (ia, ib) = match style {
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                RopeStyle::Halves => (i, i + half),
            };
            let (a, b) = (head[ia], head[ib]);
            head[ia] = a * cos - b * sin;
            head[ib] = a * sin + b * cos;
            theta *= theta_scale;
        }
    }
}

fn quantized(row: &[f32]) -> Vec<Q8Block> {
    let mut out = Vec::with_capacity(row.len() / QK);
    quantize_row(row, &mut out);
    out
}

/// RMS-normalises each row of `x` into `xn` and quantizes it.
fn normed_acts(x: &[f32], weight: &[f32], eps: f32, xn: &mut [f32]) -> Vec<Vec<Q8Block>> {
    let dim = weight.len();
    xn.chunks_exact_mut(dim)
        .zip(x.chunks_exact(dim))
        .map(|(out, row)| {
            rms_norm(row, weight, eps, out);
            quantized(out)
        })
        .collect()
}

impl LlamaModel {
    /// Builds the decoder from `config` and its tensors.
    fn from_weights(config: Config, w: &dyn Weights) -> Result<Self, GenerateError> {
        config.check()?;
        let (dim, kv, ff) = (config.n_embd, config.kv_dim(), config.n_ff);
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let m = |p, rows, cols| {
                required(w.matrix(Name::Layer(i, p), rows, cols)?, Name::Layer(i, p))
            };
            let v = |p, len| required(w.vector(Name::Layer(i, p), len)?, Name::Layer(i, p));
            layers.push(Layer {
                attn_norm: v(Part::AttnNorm, dim)?,
                wq: m(Part::Q, dim, dim)?,
                wk: m(Part::K, kv, dim)?,
                wv: m(Part::V, kv, dim)?,
                bq: w.vector(Name::Layer(i, Part::QBias), dim)?,
                bk: w.vector(Name::Layer(i, Part::KBias), kv)?,
                bv: w.vector(Name::Layer(i, Part::VBias), kv)?,
                wo: m(Part::Output, dim, dim)?,
                ffn_norm: v(Part::FfnNorm, dim)?,
                gate: m(Part::Gate, ff, dim)?,
                up: m(Part::Up, ff, dim)?,
                down: m(Part::Down, dim, ff)?,
            });
        }
        Ok(Self {
            embedding: required(
                w.matrix(Name::Embedding, config.vocab_size, dim)?,
                Name::Embedding,
            )?,
            output: w.matrix(Name::Output, config.vocab_size, dim)?,
            output_norm: required(w.vector(Name::OutputNorm, dim)?, Name::OutputNorm)?,
            rope_factors: w.vector(Name::RopeFactors, config.head_dim() / 2)?,
            config,
            layers,
        })
    }

    /// Its shape.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Threads the decoder computes on (the caller's and its team's).
    pub fn threads() -> usize {
        Team::global().size()
    }

    /// An empty cache for one sequence, with room for `tokens` tokens
    /// (it grows past that if needed).
    pub fn new_cache(&self, tokens: usize) -> KvCache {
        let room = tokens.min(self.config.context_length) * self.config.kv_dim();
        KvCache {
            k: (0..self.config.n_layer)
                .map(|_| Vec::with_capacity(room))
                .collect(),
            v: (0..self.config.n_layer)
                .map(|_| Vec::with_capacity(room))
                .collect(),
            len: 0,
        }
    }

    /// Runs `tokens` (a whole prompt in one batch, or one token) at the
    /// cache's next positions; returns the next-token logits after the last
    /// one when `logits` is set. One sequence's [`forward_batch`](Self::forward_batch).
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: bool,
    ) -> Result<Option<Vec<f32>>, GenerateError> {
        let mut steps = [BatchStep {
            tokens,
            cache,
            logits,
        }];
        Ok(self.forward_batch(&mut steps)?.pop().flatten())
    }

    /// Bytes of cache one token takes (keys and values of every layer).
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.config.n_layer * self.config.kv_dim() * std::mem::size_of::<u16>()
    }

    /// Greedy decoding: up to `max_new` tokens after `prompt`, stopping
    /// after the first token in `stop`.
    pub fn greedy(
        &self,
        prompt: &[u32],
        max_new: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>, GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::Model("an empty prompt".into()));
        }
        if prompt.len() + max_new > self.config.context_length {
            return Err(GenerateError::Model(format!(
                "{} prompt tokens + {max_new} new exceed the context window of {}",
                prompt.len(),
                self.config.context_length
            )));
        }
        let mut cache = self.new_cache(prompt.len() + max_new);
        let mut logits = self.forward(prompt, &mut cache, true)?.unwrap_or_default();
        let mut out = Vec::with_capacity(max_new);
        for step in 0..max_new {
            if step > 0 {
                logits = self
                    .forward(&out[step - 1..step], &mut cache, true)?
                    .unwrap_or_default();
            }
            if logits.is_empty() {
                return Err(GenerateError::Model("empty logits".into()));
            }
            let next = crate::sampling::argmax(&logits);
            out.push(next);
            if stop.contains(&next) {
                break;
            }
        }
        Ok(out)
    }
}
