//! Quarry's own llama-family decoder for GGUF files (Q4_1 and Q8_0
//! weights, F32 norms), token by token on the CPU.
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
//! What remains is ggml's own vectorised exp (softmax, SiLU), not copied
//! here: see tests/greedy.rs.
//!
//! Matrix products and prompt attention split across a spinning thread
//! team ([`team`]). This is
//! the correctness baseline; batched prefill and the speed work come next.

mod attention;
pub mod quant;
mod team;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::GgmlDType;

use crate::GenerateError;
use quant::{
    dequantize_row, dot4_kernel, dot8_kernel, dot_kernel, quantize_row, Dot4Kernel, Dot8Kernel,
    DotKernel, Q8Block, WeightType, QK,
};
use team::{SharedMut, Team};

/// Fewest weight rows in one parallel work item.
const MIN_ROWS_PER_TASK: usize = 16;

/// Shape and hyper-parameters from the GGUF metadata.
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

    fn kv_dim(&self) -> usize {
        self.head_dim() * self.n_head_kv
    }
}

/// A quantized matrix, row-major, one row per output, packed (see
/// [`quant::pack`]).
struct Matrix {
    kind: WeightType,
    rows: usize,
    blocks_per_row: usize,
    scales: Vec<f32>,
    quants: Vec<u8>,
    dot: DotKernel,
    dot4: Dot4Kernel,
    dot8: Option<Dot8Kernel>,
}

impl Matrix {
    fn row(&self, r: usize) -> (&[f32], &[u8]) {
        let (s, q) = (
            self.blocks_per_row * self.kind.scales_per_block(),
            self.blocks_per_row * self.kind.quant_bytes(),
        );
        (
            &self.scales[r * s..(r + 1) * s],
            &self.quants[r * q..(r + 1) * q],
        )
    }
}

/// The products of several matrices with the same activation rows, in one
/// parallel section: each section wakes the team, which in decoding (one
/// activation row, small matrices) costs as much as the arithmetic. Work
/// items are row ranges across all the matrices; each weight row meets
/// every activation row while it is in cache, which is what makes a
/// batched prompt cheaper per token than decoding. `outs[i]` receives
/// matrix i's `[acts.len() x rows]`; `scratch` is reused between calls (a
/// prompt's buffers are megabytes, and fresh ones cost page faults).
fn matmul_group(
    mats: &[&Matrix],
    acts: &[Vec<Q8Block>],
    outs: &mut [&mut Vec<f32>],
    scratch: &mut Vec<f32>,
) {
    let n = acts.len();
    let team = Team::global();
    let total: usize = mats.iter().map(|m| m.rows).sum();
    let tasks = team.size() * if n == 1 { 1 } else { 4 };
    let chunk = total.div_ceil(tasks).max(MIN_ROWS_PER_TASK);
    let mut offsets = Vec::with_capacity(mats.len());
    let mut offset = 0;
    for m in mats {
        offsets.push(offset);
        offset += m.rows * n;
    }
    let items: Vec<(usize, usize, usize)> = mats
        .iter()
        .enumerate()
        .flat_map(|(mi, m)| {
            (0..m.rows)
                .step_by(chunk)
                .map(move |start| (mi, start, (start + chunk).min(m.rows)))
        })
        .collect();
    // Row-major by weight row: item (mi, start, end) owns rows start..end
    // of matrix mi, a range no other item touches.
    scratch.clear();
    scratch.resize(offset, 0.0);
    let by_row = SharedMut(scratch.as_mut_ptr());
    team.run(&|member, size| {
        for &(mi, start, end) in items.iter().skip(member).step_by(size) {
            let m = mats[mi];
            // SAFETY: rows start..end of matrix mi belong to this item only,
            // and `scratch` outlives the section.
            let out = unsafe {
                std::slice::from_raw_parts_mut(
                    by_row.ptr().add(offsets[mi] + start * n),
                    (end - start) * n,
                )
            };
            let mut out = out.iter_mut();
            for r in start..end {
                let (scales, quants) = m.row(r);
                let mut rest = acts;
                if let Some(dot8) = m.dot8 {
                    let mut eights = acts.chunks_exact(8);
                    for g in eights.by_ref() {
                        let v = dot8(scales, quants, std::array::from_fn(|i| g[i].as_slice()));
                        for v in v {
                            *out.next().expect("sized to rows x acts") = v;
                        }
                    }
                    rest = eights.remainder();
                }
                let mut groups = rest.chunks_exact(4);
                for g in groups.by_ref() {
                    let four = (m.dot4)(scales, quants, [&g[0], &g[1], &g[2], &g[3]]);
                    for v in four {
                        *out.next().expect("sized to rows x acts") = v;
                    }
                }
                for act in groups.remainder() {
                    *out.next().expect("sized to rows x acts") = (m.dot)(scales, quants, act);
                }
            }
        }
    });
    for ((out, m), off) in outs.iter_mut().zip(mats).zip(&offsets) {
        let rows_major = &scratch[*off..*off + m.rows * n];
        out.clear();
        out.resize(n * m.rows, 0.0);
        if n == 1 {
            out.copy_from_slice(rows_major);
            continue;
        }
        for (r, row) in rows_major.chunks_exact(n).enumerate() {
            for (j, v) in row.iter().enumerate() {
                out[j * m.rows + r] = *v;
            }
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
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
}

/// The attention state of one sequence. Keys and values are rounded to
/// f16, as llama.cpp's cache holds them, but kept as f32 so that the
/// attention loops convert nothing.
pub struct KvCache {
    /// Per layer: keys, position-major (`len * kv_dim`).
    k: Vec<Vec<f32>>,
    /// Per layer: values, position-major.
    v: Vec<Vec<f32>>,
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
}

fn meta_u32(md: &HashMap<String, Value>, key: &str) -> Result<usize, GenerateError> {
    md.get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| GenerateError::Model(format!("the GGUF metadata has no {key}")))
}

fn meta_f32(md: &HashMap<String, Value>, key: &str, default: f32) -> f32 {
    md.get(key).and_then(|v| v.to_f32().ok()).unwrap_or(default)
}

/// The tensors of a GGUF file, read into memory.
struct Tensors {
    bytes: Vec<u8>,
    content: gguf_file::Content,
}

impl Tensors {
    fn raw(&self, name: &str) -> Result<(GgmlDType, Vec<usize>, &[u8]), GenerateError> {
        let info =
            self.content.tensor_infos.get(name).ok_or_else(|| {
                GenerateError::Model(format!("the GGUF file has no tensor {name}"))
            })?;
        let dims = info.shape.dims().to_vec();
        let elems: usize = dims.iter().product();
        let size = match info.ggml_dtype {
            GgmlDType::F32 => elems * 4,
            GgmlDType::Q4_1 => elems / QK * WeightType::Q4_1.block_bytes(),
            GgmlDType::Q8_0 => elems / QK * WeightType::Q8_0.block_bytes(),
            other => {
                return Err(GenerateError::Model(format!(
                    "tensor {name} is {other:?}; this decoder reads F32, Q4_1 and Q8_0"
                )))
            }
        };
        let start = (self.content.tensor_data_offset + info.offset) as usize;
        let bytes = self.bytes.get(start..start + size).ok_or_else(|| {
            GenerateError::Model(format!("tensor {name} runs past the end of the file"))
        })?;
        Ok((info.ggml_dtype, dims, bytes))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, GenerateError> {
        let (dtype, dims, bytes) = self.raw(name)?;
        if dtype != GgmlDType::F32 || dims.iter().product::<usize>() != len {
            return Err(GenerateError::Model(format!(
                "tensor {name} is {dtype:?} {dims:?}, expected F32 [{len}]"
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix, GenerateError> {
        let (dtype, dims, bytes) = self.raw(name)?;
        let kind = match dtype {
            GgmlDType::Q4_1 => WeightType::Q4_1,
            GgmlDType::Q8_0 => WeightType::Q8_0,
            other => {
                return Err(GenerateError::Model(format!(
                    "matrix {name} is {other:?}; this decoder reads Q4_1 and Q8_0"
                )))
            }
        };
        if dims != [rows, cols] || !cols.is_multiple_of(QK) {
            return Err(GenerateError::Model(format!(
                "matrix {name} is {dims:?}, expected [{rows}, {cols}]"
            )));
        }
        let (scales, quants) = quant::pack(kind, bytes);
        Ok(Matrix {
            kind,
            rows,
            blocks_per_row: cols / QK,
            scales,
            quants,
            dot: dot_kernel(kind),
            dot4: dot4_kernel(kind),
            dot8: dot8_kernel(kind),
        })
    }
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

/// Rotates consecutive pairs of each head by position (llama's "normal"
/// RoPE; GGUF files carry q and k permuted for it).
fn rope(x: &mut [f32], head_dim: usize, pos: usize, base: f32) {
    let theta_scale = base.powf(-2.0 / head_dim as f32);
    for head in x.chunks_exact_mut(head_dim) {
        let mut theta = pos as f32;
        for pair in head.chunks_exact_mut(2) {
            let (sin, cos) = theta.sin_cos();
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos - b * sin;
            pair[1] = a * sin + b * cos;
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

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

impl LlamaModel {
    /// Loads a llama-architecture GGUF file.
    pub fn load(path: &Path) -> Result<Self, GenerateError> {
        let io = |source| GenerateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let content = gguf_file::Content::read(&mut std::io::Cursor::new(&bytes)).map_err(|e| {
            GenerateError::Model(format!("{}: not a GGUF file: {e}", path.display()))
        })?;
        let md = &content.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(GenerateError::Model(format!(
                "{}: architecture {arch:?} is not supported (llama is)",
                path.display()
            )));
        }
        let n_embd = meta_u32(md, "llama.embedding_length")?;
        let n_head = meta_u32(md, "llama.attention.head_count")?;
        let config = Config {
            n_layer: meta_u32(md, "llama.block_count")?,
            n_embd,
            n_head,
            n_head_kv: meta_u32(md, "llama.attention.head_count_kv").unwrap_or(n_head),
            n_ff: meta_u32(md, "llama.feed_forward_length")?,
            rope_base: meta_f32(md, "llama.rope.freq_base", 10_000.0),
            eps: meta_f32(md, "llama.attention.layer_norm_rms_epsilon", 1e-5),
            context_length: meta_u32(md, "llama.context_length").unwrap_or(2048),
            vocab_size: md
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map_or(0, Vec::len),
        };
        if n_head == 0
            || config.n_head_kv == 0
            || !n_embd.is_multiple_of(n_head)
            || !n_head.is_multiple_of(config.n_head_kv)
        {
            return Err(GenerateError::Model(format!(
                "{}: inconsistent head counts {config:?}",
                path.display()
            )));
        }
        let t = Tensors { bytes, content };
        let (kv, ff) = (config.kv_dim(), config.n_ff);
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: t.vector(&p("attn_norm"), n_embd)?,
                wq: t.matrix(&p("attn_q"), n_embd, n_embd)?,
                wk: t.matrix(&p("attn_k"), kv, n_embd)?,
                wv: t.matrix(&p("attn_v"), kv, n_embd)?,
                wo: t.matrix(&p("attn_output"), n_embd, n_embd)?,
                ffn_norm: t.vector(&p("ffn_norm"), n_embd)?,
                gate: t.matrix(&p("ffn_gate"), ff, n_embd)?,
                up: t.matrix(&p("ffn_up"), ff, n_embd)?,
                down: t.matrix(&p("ffn_down"), n_embd, ff)?,
            });
        }
        let embedding = t.matrix("token_embd.weight", config.vocab_size, n_embd)?;
        let output = if t.content.tensor_infos.contains_key("output.weight") {
            Some(t.matrix("output.weight", config.vocab_size, n_embd)?)
        } else {
            None
        };
        Ok(Self {
            output_norm: t.vector("output_norm.weight", n_embd)?,
            config,
            embedding,
            output,
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
    /// one when `logits` is set.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: bool,
    ) -> Result<Option<Vec<f32>>, GenerateError> {
        let c = &self.config;
        if let Some(bad) = tokens.iter().find(|t| **t as usize >= c.vocab_size) {
            return Err(GenerateError::Model(format!(
                "token {bad} is outside the vocabulary ({})",
                c.vocab_size
            )));
        }
        if cache.len + tokens.len() > c.context_length {
            return Err(GenerateError::Model(format!(
                "{} cached + {} new tokens exceed the context window of {}",
                cache.len,
                tokens.len(),
                c.context_length
            )));
        }
        let n = tokens.len();
        if n == 0 {
            return Ok(None);
        }
        let (dim, kv_dim, start) = (c.n_embd, c.kv_dim(), cache.len);
        let mut x = vec![0f32; n * dim];
        for (row, t) in x.chunks_exact_mut(dim).zip(tokens) {
            let (scales, quants) = self.embedding.row(*t as usize);
            dequantize_row(self.embedding.kind, scales, quants, row);
        }
        let mut xn = vec![0f32; n * dim];
        let mut scratch = Vec::new();
        let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let (mut proj, mut g, mut u) = (Vec::new(), Vec::new(), Vec::new());
        let mut attn = vec![0f32; n * dim];
        for (l, layer) in self.layers.iter().enumerate() {
            let acts = normed_acts(&x, &layer.attn_norm, c.eps, &mut xn);
            matmul_group(
                &[&layer.wq, &layer.wk, &layer.wv],
                &acts,
                &mut [&mut q, &mut k, &mut v],
                &mut scratch,
            );
            for t in 0..n {
                rope(
                    &mut q[t * dim..(t + 1) * dim],
                    c.head_dim(),
                    start + t,
                    c.rope_base,
                );
                rope(
                    &mut k[t * kv_dim..(t + 1) * kv_dim],
                    c.head_dim(),
                    start + t,
                    c.rope_base,
                );
            }
            for (stored, new) in [(&mut cache.k[l], &k), (&mut cache.v[l], &v)] {
                let from = stored.len();
                stored.extend_from_slice(new);
                attention::round_f16(&mut stored[from..]);
            }
            let (keys, values) = (&cache.k[l], &cache.v[l]);
            let shape = attention::Shape {
                n_head: c.n_head,
                n_head_kv: c.n_head_kv,
                head_dim: c.head_dim(),
            };
            let out = SharedMut(attn.as_mut_ptr());
            Team::global().run(&|member, size| {
                // One token (decoding): the members split the heads; a
                // prompt: they split the tokens.
                let (tokens, heads) = if n == 1 {
                    (
                        0..1,
                        attention::Heads {
                            first: member,
                            step: size,
                        },
                    )
                } else {
                    (member..n, attention::Heads::ALL)
                };
                for t in tokens.step_by(if n == 1 { 1 } else { size }) {
                    attention::attend(
                        shape,
                        heads,
                        &q[t * dim..(t + 1) * dim],
                        keys,
                        values,
                        start + t + 1,
                        // SAFETY: `attn` outlives the section, and each
                        // member writes only its tokens' rows or its heads.
                        unsafe { out.ptr().add(t * dim) },
                    );
                }
            });
            let acts: Vec<Vec<Q8Block>> = attn.chunks_exact(dim).map(quantized).collect();
            matmul_group(&[&layer.wo], &acts, &mut [&mut proj], &mut scratch);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            let acts = normed_acts(&x, &layer.ffn_norm, c.eps, &mut xn);
            matmul_group(
                &[&layer.gate, &layer.up],
                &acts,
                &mut [&mut g, &mut u],
                &mut scratch,
            );
            g.iter_mut().zip(&u).for_each(|(a, b)| *a = silu(*a) * b);
            let acts: Vec<Vec<Q8Block>> = g.chunks_exact(c.n_ff).map(quantized).collect();
            matmul_group(&[&layer.down], &acts, &mut [&mut proj], &mut scratch);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        cache.len += n;
        if !logits {
            return Ok(None);
        }
        let last = &x[(n - 1) * dim..];
        let mut normed = vec![0f32; dim];
        rms_norm(last, &self.output_norm, c.eps, &mut normed);
        let output = self.output.as_ref().unwrap_or(&self.embedding);
        let mut logits = Vec::new();
        matmul_group(
            &[output],
            &[quantized(&normed)],
            &mut [&mut logits],
            &mut scratch,
        );
        Ok(Some(logits))
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
