//! Reading the decoder from a Hugging Face folder: config.json for the
//! shape, every `*.safetensors` file in the folder (one or sharded) for
//! the tensors, by the transformers names of `LlamaForCausalLM` and
//! `Qwen2ForCausalLM`.
//!
//! Weights (F32, F16 or BF16) are converted to Q8_0 when loaded, so the
//! same kernels run them as GGUF files; RoPE pairs the halves of each head
//! (transformers' rotate_half), and llama 3's `rope_scaling` becomes the
//! per-pair frequency divisors llama.cpp would compute.

use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use serde::Deserialize;

use super::matrix::Matrix;
use super::{Config, LlamaModel, Name, Part, RopeStyle, Weights};
use crate::GenerateError;

/// `rope_scaling` in config.json.
#[derive(Debug, Deserialize)]
struct RopeScaling {
    #[serde(alias = "type")]
    rope_type: String,
    factor: Option<f32>,
    low_freq_factor: Option<f32>,
    high_freq_factor: Option<f32>,
    original_max_position_embeddings: Option<f32>,
}

/// The fields of config.json the decoder reads.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    intermediate_size: usize,
    vocab_size: usize,
    rope_theta: Option<f32>,
    rms_norm_eps: Option<f32>,
    max_position_embeddings: Option<usize>,
    head_dim: Option<usize>,
    rope_scaling: Option<RopeScaling>,
    hidden_act: Option<String>,
}

/// Architectures (config.json `model_type`) this decoder runs.
const MODEL_TYPES: &[&str] = &["llama", "qwen2"];

/// llama 3's frequency divisors for `rope_scaling.rope_type = "llama3"`
/// (transformers' `_compute_llama3_parameters`, as a divisor per pair).
fn llama3_factors(s: &RopeScaling, base: f32, head_dim: usize) -> Result<Vec<f32>, GenerateError> {
    let need = |v: Option<f32>, field: &str| {
        v.ok_or_else(|| GenerateError::Model(format!("config.json rope_scaling has no {field}")))
    };
    let factor = need(s.factor, "factor")?;
    let low = need(s.low_freq_factor, "low_freq_factor")?;
    let high = need(s.high_freq_factor, "high_freq_factor")?;
    let old = need(
        s.original_max_position_embeddings,
        "original_max_position_embeddings",
    )?;
    let (low_wavelen, high_wavelen) = (old / low, old / high);
    Ok((0..head_dim / 2)
        .map(|i| {
            let freq = base.powf(-2.0 * i as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            let scaled = if wavelen < high_wavelen {
                freq
            } else if wavelen > low_wavelen {
                freq / factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * freq / factor + smooth * freq
            };
            freq / scaled
        })
        .collect())
}

struct SafetensorsWeights {
    tensors: MmapedSafetensors,
    rope_factors: Option<Vec<f32>>,
}

impl SafetensorsWeights {
    fn tensor_name(name: Name) -> Option<String> {
        let part = |p: Part| match p {
            Part::AttnNorm => "input_layernorm.weight",
            Part::Q => "self_attn.q_proj.weight",
            Part::K => "self_attn.k_proj.weight",
            Part::V => "self_attn.v_proj.weight",
            Part::QBias => "self_attn.q_proj.bias",
            Part::KBias => "self_attn.k_proj.bias",
            Part::VBias => "self_attn.v_proj.bias",
            Part::Output => "self_attn.o_proj.weight",
            Part::FfnNorm => "post_attention_layernorm.weight",
            Part::Gate => "mlp.gate_proj.weight",
            Part::Up => "mlp.up_proj.weight",
            Part::Down => "mlp.down_proj.weight",
        };
        Some(match name {
            Name::Embedding => "model.embed_tokens.weight".into(),
            Name::Output => "lm_head.weight".into(),
            Name::OutputNorm => "model.norm.weight".into(),
            Name::RopeFactors => return None,
            Name::Layer(i, p) => format!("model.layers.{i}.{}", part(p)),
        })
    }

    /// The tensor as f32 values, checked against `dims`.
    fn values(&self, name: &str, dims: &[usize]) -> Result<Option<Vec<f32>>, GenerateError> {
        if self.tensors.get(name).is_err() {
            return Ok(None);
        }
        let bad = |e: candle_core::Error| GenerateError::Model(format!("tensor {name}: {e}"));
        let t = self.tensors.load(name, &Device::Cpu).map_err(bad)?;
        let flat: usize = dims.iter().product();
        if t.dims() != dims && !(dims.len() == 1 && t.elem_count() == flat) {
            return Err(GenerateError::Model(format!(
                "tensor {name} is {:?}, expected {dims:?}",
                t.dims()
            )));
        }
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map(Some)
            .map_err(bad)
    }
}

impl Weights for SafetensorsWeights {
    fn matrix(
        &self,
        name: Name,
        rows: usize,
        cols: usize,
    ) -> Result<Option<Matrix>, GenerateError> {
        let Some(name) = Self::tensor_name(name) else {
            return Ok(None);
        };
        match self.values(&name, &[rows, cols])? {
            Some(v) => Matrix::from_f32(&name, rows, cols, &v).map(Some),
            None => Ok(None),
        }
    }

    fn vector(&self, name: Name, len: usize) -> Result<Option<Vec<f32>>, GenerateError> {
        match Self::tensor_name(name) {
            Some(name) => self.values(&name, &[len]),
            None => Ok(self.rope_factors.clone()),
        }
    }
}

impl LlamaModel {
    /// Loads a llama or qwen2 model from a Hugging Face folder
    /// (config.json and its safetensors files).
    pub fn load_safetensors(dir: &Path) -> Result<Self, GenerateError> {
        let context = |m: String| GenerateError::Model(format!("{}: {m}", dir.display()));
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| GenerateError::Io {
            path: config_path.clone(),
            source,
        })?;
        let hf: HfConfig =
            serde_json::from_str(&text).map_err(|e| context(format!("config.json: {e}")))?;
        let model_type = hf.model_type.as_deref().unwrap_or("");
        if !MODEL_TYPES.contains(&model_type) {
            return Err(context(format!(
                "config.json model_type {model_type:?} is not supported (llama and qwen2 are)"
            )));
        }
        if let Some(act) = hf.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(context(format!(
                "config.json hidden_act {act:?} is not supported (silu is)"
            )));
        }
        let head_dim = hf.hidden_size / hf.num_attention_heads.max(1);
        if hf.head_dim.is_some_and(|d| d != head_dim) {
            return Err(context(format!(
                "config.json head_dim {:?} differs from hidden_size / num_attention_heads ({head_dim}); not supported",
                hf.head_dim
            )));
        }
        let rope_base = hf.rope_theta.unwrap_or(10_000.0);
        let rope_factors = match &hf.rope_scaling {
            None => None,
            Some(s) if s.rope_type == "default" => None,
            Some(s) if s.rope_type == "llama3" => Some(llama3_factors(s, rope_base, head_dim)?),
            Some(s) => {
                return Err(context(format!(
                    "config.json rope_scaling type {:?} is not supported (llama3 is)",
                    s.rope_type
                )))
            }
        };
        let config = Config {
            n_layer: hf.num_hidden_layers,
            n_embd: hf.hidden_size,
            n_head: hf.num_attention_heads,
            n_head_kv: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            n_ff: hf.intermediate_size,
            rope_base,
            rope_style: RopeStyle::Halves,
            eps: hf.rms_norm_eps.unwrap_or(1e-6),
            context_length: hf.max_position_embeddings.unwrap_or(2048),
            vocab_size: hf.vocab_size,
        };
        let files = crate::model_files::files_with_extension(dir, "safetensors")?;
        if files.is_empty() {
            return Err(context("no .safetensors file".into()));
        }
        // SAFETY: the files are mapped read-only; like every reader of
        // mapped model files, this assumes nobody truncates them while the
        // model loads (the weights are copied out before this returns).
        let tensors = unsafe { MmapedSafetensors::multi(&files) }
            .map_err(|e| context(format!("reading the safetensors files: {e}")))?;
        Self::from_weights(
            config,
            &SafetensorsWeights {
                tensors,
                rope_factors,
            },
        )
        .map_err(|e| match e {
            GenerateError::Model(m) => context(m),
            e => e,
        })
    }

    /// Loads a GGUF file, a folder holding one, or a safetensors folder.
    pub fn load(path: &Path) -> Result<Self, GenerateError> {
        match crate::ModelFormat::detect(path)? {
            crate::ModelFormat::Gguf(file) => Self::load_gguf(&file),
            crate::ModelFormat::Safetensors(dir) => Self::load_safetensors(&dir),
        }
    }
}
