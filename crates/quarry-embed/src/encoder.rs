//! A BERT encoder for CPU inference, built for the shapes sentence
//! embedding produces: many short sequences, often one at a time.
//!
//! Why not candle-transformers' `BertModel` (the reference it is tested
//! against): profiling showed its time going to things the model does not
//! need. Its `Linear` multiplies by a transposed view of each weight, so gemm
//! repacks every weight on every call (3-8x slower for a short query); every
//! matmul uses every core, and two threads on a 10-token query are 5x
//! slower than one; GELU calls a scalar `erf` per element; and each op
//! allocates its output. Here weights are transposed once at load, each
//! matmul picks its own parallelism from its size, bias and activation are
//! applied in place, residual adds are fused into layer norm, and attention
//! works on strided slices of the fused QKV projection without copies.
//! Weights still load through candle (safetensors, any float dtype).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use serde::Deserialize;

use crate::EmbedError;

/// Below this many multiply-adds a matmul runs on one thread: measured
/// here, splitting a 10x384x384 product over two threads made it 5x slower.
const PARALLEL_MIN_MACS: usize = 1 << 23;

/// The encoder's architecture, from `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Model width.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Activation: gelu, gelu_new / gelu_pytorch_tanh, or relu.
    pub hidden_act: String,
    /// Longest sequence the position table covers.
    pub max_position_embeddings: usize,
    /// Layer norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Token id used for padding.
    #[serde(default)]
    pub pad_token_id: u32,
}

fn default_eps() -> f64 {
    1e-12
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

/// `x @ w + b`, with `w` stored transposed (in, out) and contiguous.
struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    output_norm: LayerNorm,
}

/// The loaded encoder.
pub struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    type_vocab: usize,
    vocab: usize,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    max_positions: usize,
    activation: Activation,
    threads: usize,
}

struct Weights {
    tensors: candle_core::safetensors::MmapedSafetensors,
    prefix: String,
}

impl Weights {
    fn get(&self, name: &str) -> Result<Tensor, EmbedError> {
        let full = format!("{}{name}", self.prefix);
        self.tensors
            .load(&full, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| EmbedError::ModelFile {
                path: "model.safetensors".into(),
                reason: format!("tensor {full}: {e}"),
            })
    }

    fn vec(&self, name: &str, len: usize) -> Result<Vec<f32>, EmbedError> {
        let v = self.get(name)?.flatten_all()?.to_vec1::<f32>()?;
        if v.len() != len {
            return Err(EmbedError::ModelFile {
                path: "model.safetensors".into(),
                reason: format!("tensor {name} has {} values, expected {len}", v.len()),
            });
        }
        Ok(v)
    }

    /// A PyTorch linear layer (weight (out, in)), transposed to (in, out).
    fn linear(&self, name: &str, inputs: usize, outputs: usize) -> Result<Linear, EmbedError> {
        let w = self.get(&format!("{name}.weight"))?;
        if w.dims() != [outputs, inputs] {
            return Err(EmbedError::ModelFile {
                path: "model.safetensors".into(),
                reason: format!(
                    "{name}.weight has shape {:?}, expected [{outputs}, {inputs}]",
                    w.dims()
                ),
            });
        }
        let w = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let b = self.vec(&format!("{name}.bias"), outputs)?;
        Ok(Linear {
            w,
            b,
            inputs,
            outputs,
        })
    }

    fn layer_norm(&self, name: &str, width: usize, eps: f64) -> Result<LayerNorm, EmbedError> {
        // Old BERT checkpoints name the parameters gamma and beta.
        let (g, b) = if self
            .tensors
            .get(&format!("{}{name}.weight", self.prefix))
            .is_ok()
        {
            ("weight", "bias")
        } else {
            ("gamma", "beta")
        };
        Ok(LayerNorm {
            gamma: self.vec(&format!("{name}.{g}"), width)?,
            beta: self.vec(&format!("{name}.{b}"), width)?,
            eps: eps as f32,
        })
    }
}

/// Fuses three (d -> d) projections into one (d -> 3d) so attention needs
/// one matmul for queries, keys and values.
fn fuse(q: Linear, k: Linear, v: Linear) -> Linear {
    let (inputs, d) = (q.inputs, q.outputs);
    let mut w = Vec::with_capacity(inputs * 3 * d);
    for row in 0..inputs {
        for part in [&q, &k, &v] {
            w.extend_from_slice(&part.w[row * d..(row + 1) * d]);
        }
    }
    let b = [q.b, k.b, v.b].concat();
    Linear {
        w,
        b,
        inputs,
        outputs: 3 * d,
    }
}

impl Encoder {
    /// Loads `model.safetensors` in `dir` for the architecture `config`.
    pub fn load(dir: &Path, config: &BertConfig, threads: usize) -> Result<Self, EmbedError> {
        let path = dir.join("model.safetensors");
        // SAFETY: the file is mapped read-only; Quarry never writes model
        // files, and weights are copied out before the map is dropped.
        let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::new(&path) }
            .map_err(|e| EmbedError::file(&path, e))?;
        let prefix = if tensors
            .get("bert.embeddings.word_embeddings.weight")
            .is_ok()
        {
            "bert.".to_owned()
        } else {
            String::new()
        };
        let w = Weights { tensors, prefix };
        let d = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(EmbedError::file(
                dir.join("config.json"),
                "hidden_size must be a multiple of num_attention_heads",
            ));
        }
        let activation = match config.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(EmbedError::file(
                    dir.join("config.json"),
                    format!("unsupported hidden_act {other:?}"),
                ))
            }
        };
        let word_t = w.get("embeddings.word_embeddings.weight")?;
        let vocab = word_t.dims()[0];
        let type_t = w.get("embeddings.token_type_embeddings.weight")?;
        let type_vocab = type_t.dims()[0];
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                qkv: fuse(
                    w.linear(&format!("{p}.attention.self.query"), d, d)?,
                    w.linear(&format!("{p}.attention.self.key"), d, d)?,
                    w.linear(&format!("{p}.attention.self.value"), d, d)?,
                ),
                attention_out: w.linear(&format!("{p}.attention.output.dense"), d, d)?,
                attention_norm: w.layer_norm(
                    &format!("{p}.attention.output.LayerNorm"),
                    d,
                    config.layer_norm_eps,
                )?,
                up: w.linear(
                    &format!("{p}.intermediate.dense"),
                    d,
                    config.intermediate_size,
                )?,
                down: w.linear(&format!("{p}.output.dense"), config.intermediate_size, d)?,
                output_norm: w.layer_norm(
                    &format!("{p}.output.LayerNorm"),
                    d,
                    config.layer_norm_eps,
                )?,
            });
        }
        Ok(Self {
            word: word_t.flatten_all()?.to_vec1()?,
            position: w.vec(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings * d,
            )?,
            token_type: type_t.flatten_all()?.to_vec1()?,
            type_vocab,
            vocab,
            embedding_norm: w.layer_norm("embeddings.LayerNorm", d, config.layer_norm_eps)?,
            layers,
            hidden: d,
            heads,
            max_positions: config.max_position_embeddings,
            activation,
            threads: threads.max(1),
        })
    }

    /// Model width.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Runs the encoder on a right-padded batch of `batch` rows of `len`
    /// tokens; returns the last hidden states, (batch * len) rows of width
    /// `hidden_size`.
    pub fn forward(
        &self,
        ids: &[u32],
        type_ids: &[u32],
        mask: &[u32],
        batch: usize,
        len: usize,
    ) -> Result<Vec<f32>, EmbedError> {
        let d = self.hidden;
        let rows = batch * len;
        if len > self.max_positions {
            return Err(EmbedError::Tokenizer(format!(
                "sequence of {len} tokens exceeds the model's {} positions",
                self.max_positions
            )));
        }
        let mut x = vec![0f32; rows * d];
        for (r, out) in x.chunks_exact_mut(d).enumerate() {
            let id = ids[r] as usize;
            let ty = type_ids[r] as usize;
            if id >= self.vocab || ty >= self.type_vocab {
                return Err(EmbedError::Tokenizer(format!(
                    "token id {id} (type {ty}) is outside the model's vocabulary"
                )));
            }
            let pos = r % len;
            let (wv, pv, tv) = (
                &self.word[id * d..][..d],
                &self.position[pos * d..][..d],
                &self.token_type[ty * d..][..d],
            );
            for i in 0..d {
                out[i] = wv[i] + pv[i] + tv[i];
            }
        }
        layer_norm_rows(&mut x, None, &self.embedding_norm, d);

        let mut context = vec![0f32; rows * d];
        for layer in &self.layers {
            let qkv = self.linear(&layer.qkv, &x, rows);
            self.attention(&qkv, mask, batch, len, &mut context);
            let attended = self.linear(&layer.attention_out, &context, rows);
            let mut h = attended;
            layer_norm_rows(&mut h, Some(&x), &layer.attention_norm, d);
            let mut inner = self.linear(&layer.up, &h, rows);
            self.activate(&mut inner);
            let mut out = self.linear(&layer.down, &inner, rows);
            layer_norm_rows(&mut out, Some(&h), &layer.output_norm, d);
            x = out;
        }
        Ok(x)
    }

    fn parallelism(&self, macs: usize) -> Parallelism {
        if self.threads > 1 && macs >= PARALLEL_MIN_MACS {
            Parallelism::Rayon(self.threads)
        } else {
            Parallelism::None
        }
    }

    fn linear(&self, l: &Linear, x: &[f32], rows: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), rows * l.inputs);
        let mut out = Vec::with_capacity(rows * l.outputs);
        for _ in 0..rows {
            out.extend_from_slice(&l.b);
        }
        // SAFETY: out is rows x outputs, x is rows x inputs and w is
        // inputs x outputs, all row-major and contiguous, as the strides say.
        unsafe {
            gemm::gemm(
                rows,
                l.outputs,
                l.inputs,
                out.as_mut_ptr(),
                1,
                l.outputs as isize,
                true,
                x.as_ptr(),
                1,
                l.inputs as isize,
                l.w.as_ptr(),
                1,
                l.outputs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                self.parallelism(rows * l.inputs * l.outputs),
            );
        }
        out
    }

    fn activate(&self, x: &mut [f32]) {
        // One monomorphised loop per activation, so each inlines and
        // vectorises (a function pointer per element measured 17% of a run).
        match self.activation {
            Activation::GeluErf => self.map(x, |v| {
                0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
            }),
            Activation::GeluTanh => self.map(x, |v| {
                0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044_715 * v * v * v)).tanh())
            }),
            Activation::Relu => self.map(x, |v| v.max(0.0)),
        }
    }

    fn map(&self, x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
        if self.threads > 1 && x.len() >= 1 << 16 {
            x.par_chunks_mut(1 << 14)
                .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
        } else {
            x.iter_mut().for_each(|v| *v = f(*v));
        }
    }

    /// Multi-head self-attention over the fused QKV rows, masking padded
    /// keys; writes (batch * len) x hidden into `context`.
    fn attention(&self, qkv: &[f32], mask: &[u32], batch: usize, len: usize, context: &mut [f32]) {
        let d = self.hidden;
        let dh = d / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let run = |b: usize, ctx: &mut [f32]| {
            let mut scores = vec![0f32; len * len];
            let keys = &mask[b * len..(b + 1) * len];
            let base = b * len * 3 * d;
            for h in 0..self.heads {
                let q = &qkv[base + h * dh..];
                let k = &qkv[base + d + h * dh..];
                let v = &qkv[base + 2 * d + h * dh..];
                // SAFETY: q, k and v are len rows of dh values with row
                // stride 3d inside qkv; scores is len x len; ctx is len rows
                // of width d, of which this head fills columns h*dh..+dh.
                unsafe {
                    gemm::gemm(
                        len,
                        len,
                        dh,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        q.as_ptr(),
                        1,
                        (3 * d) as isize,
                        k.as_ptr(),
                        (3 * d) as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                for row in scores.chunks_exact_mut(len) {
                    softmax_masked(row, keys);
                }
                unsafe {
                    gemm::gemm(
                        len,
                        dh,
                        len,
                        ctx.as_mut_ptr().add(h * dh),
                        1,
                        d as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        v.as_ptr(),
                        1,
                        (3 * d) as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
        };
        let block = len * d;
        if self.threads > 1 && batch > 1 {
            context[..batch * block]
                .par_chunks_mut(block)
                .enumerate()
                .for_each(|(b, ctx)| run(b, ctx));
        } else {
            for (b, ctx) in context[..batch * block].chunks_mut(block).enumerate() {
                run(b, ctx);
            }
        }
    }
}

/// Softmax over one row of scores, with masked keys given zero weight.
fn softmax_masked(row: &mut [f32], keys: &[u32]) {
    let mut max = f32::NEG_INFINITY;
    for (s, &m) in row.iter().zip(keys) {
        if m != 0 && *s > max {
            max = *s;
        }
    }
    let mut sum = 0.0;
    for (s, &m) in row.iter_mut().zip(keys) {
        *s = if m != 0 { (*s - max).exp() } else { 0.0 };
        sum += *s;
    }
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    row.iter_mut().for_each(|s| *s *= inv);
}

/// `x = layer_norm(x + residual)` row by row.
fn layer_norm_rows(x: &mut [f32], residual: Option<&[f32]>, ln: &LayerNorm, d: usize) {
    for (r, row) in x.chunks_exact_mut(d).enumerate() {
        if let Some(res) = residual {
            for (v, a) in row.iter_mut().zip(&res[r * d..(r + 1) * d]) {
                *v += a;
            }
        }
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + ln.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&ln.gamma).zip(&ln.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// erf as a rational function of x (Eigen's fast float erf): no branches
/// and no calls, so loops over it vectorise. Absolute error 6.5e-8 over
/// [-6, 6] in double precision (checked against math.erf), below float32
/// rounding of GELU's inputs.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    p *= x;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-1.0, -0.842_700_792_9),
            (2.0, 0.995_322_265),
            (3.5, 0.999_999_257),
        ] {
            assert!(
                (erf(x) as f64 - want).abs() < 2e-7,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn masked_softmax_ignores_padding() {
        let mut row = [1.0f32, 2.0, 100.0];
        softmax_masked(&mut row, &[1, 1, 0]);
        assert_eq!(row[2], 0.0);
        assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
        assert!(row[1] > row[0]);
    }
}
