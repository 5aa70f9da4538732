//! Reading the decoder from a GGUF file: the shape from the
//! `<architecture>.*` metadata, the tensors by llama.cpp's names.
//!
//! Architectures: `llama` (q and k rows permuted by the converter for
//! consecutive-pair RoPE) and `qwen2` (NEOX RoPE, q/k/v biases). Q4_1 and
//! Q8_0 matrices are used as stored; any other format candle can
//! dequantize (F16, BF16, Q4_K, Q6_K, ...) is converted to Q8_0.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{ggml_file, GgmlDType};
use candle_core::Device;

use super::matrix::Matrix;
use super::quant::WeightType;
use super::{Config, LlamaModel, Name, Part, RopeStyle, Weights};
use crate::GenerateError;

/// Architectures this decoder runs, with their RoPE pairing.
const ARCHITECTURES: &[(&str, RopeStyle)] = &[
    ("llama", RopeStyle::Interleaved),
    ("qwen2", RopeStyle::Halves),
];

fn meta_u32(md: &HashMap<String, Value>, key: &str) -> Result<usize, GenerateError> {
    md.get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| GenerateError::Model(format!("the GGUF metadata has no {key}")))
}

fn meta_f32(md: &HashMap<String, Value>, key: &str, default: f32) -> f32 {
    md.get(key).and_then(|v| v.to_f32().ok()).unwrap_or(default)
}

/// A stored tensor: its format, shape (rows first) and bytes.
type Raw<'a> = (GgmlDType, Vec<usize>, &'a [u8]);

/// The tensors of a GGUF file, read into memory.
struct GgufWeights {
    bytes: Vec<u8>,
    content: gguf_file::Content,
}

impl GgufWeights {
    fn tensor_name(name: Name) -> String {
        let part = |p: Part| match p {
            Part::AttnNorm => "attn_norm.weight",
            Part::Q => "attn_q.weight",
            Part::K => "attn_k.weight",
            Part::V => "attn_v.weight",
            Part::QBias => "attn_q.bias",
            Part::KBias => "attn_k.bias",
            Part::VBias => "attn_v.bias",
            Part::Output => "attn_output.weight",
            Part::FfnNorm => "ffn_norm.weight",
            Part::Gate => "ffn_gate.weight",
            Part::Up => "ffn_up.weight",
            Part::Down => "ffn_down.weight",
        };
        match name {
            Name::Embedding => "token_embd.weight".into(),
            Name::Output => "output.weight".into(),
            Name::OutputNorm => "output_norm.weight".into(),
            Name::RopeFactors => "rope_freqs.weight".into(),
            Name::Layer(i, p) => format!("blk.{i}.{}", part(p)),
        }
    }

    /// The tensor, if the file has it.
    fn raw(&self, name: &str) -> Result<Option<Raw<'_>>, GenerateError> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            return Ok(None);
        };
        let dims = info.shape.dims().to_vec();
        let elems: usize = dims.iter().product();
        let dtype = info.ggml_dtype;
        if !elems.is_multiple_of(dtype.block_size()) {
            return Err(GenerateError::Model(format!(
                "tensor {name}: {elems} values do not fill {dtype:?} blocks"
            )));
        }
        let size = elems / dtype.block_size() * dtype.type_size();
        let start = (self.content.tensor_data_offset + info.offset) as usize;
        let bytes = self.bytes.get(start..start + size).ok_or_else(|| {
            GenerateError::Model(format!("tensor {name} runs past the end of the file"))
        })?;
        Ok(Some((dtype, dims, bytes)))
    }

    /// Any format candle reads, as f32.
    fn dequantized(
        name: &str,
        dtype: GgmlDType,
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<Vec<f32>, GenerateError> {
        let bad = |e: candle_core::Error| GenerateError::Model(format!("tensor {name}: {e}"));
        if dtype == GgmlDType::F32 {
            return Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect());
        }
        ggml_file::qtensor_from_ggml(dtype, bytes, dims.to_vec(), &Device::Cpu)
            .and_then(|t| t.dequantize(&Device::Cpu))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(bad)
    }
}

impl Weights for GgufWeights {
    fn matrix(
        &self,
        name: Name,
        rows: usize,
        cols: usize,
    ) -> Result<Option<Matrix>, GenerateError> {
        let name = Self::tensor_name(name);
        let Some((dtype, dims, bytes)) = self.raw(&name)? else {
            return Ok(None);
        };
        if dims != [rows, cols] {
            return Err(GenerateError::Model(format!(
                "matrix {name} is {dims:?}, expected [{rows}, {cols}]"
            )));
        }
        let matrix = match dtype {
            GgmlDType::Q4_1 => Matrix::from_blocks(&name, WeightType::Q4_1, rows, cols, bytes)?,
            GgmlDType::Q8_0 => Matrix::from_blocks(&name, WeightType::Q8_0, rows, cols, bytes)?,
            other => {
                let values = Self::dequantized(&name, other, &dims, bytes)?;
                Matrix::from_f32(&name, rows, cols, &values)?
            }
        };
        Ok(Some(matrix))
    }

    fn vector(&self, name: Name, len: usize) -> Result<Option<Vec<f32>>, GenerateError> {
        let name = Self::tensor_name(name);
        let Some((dtype, dims, bytes)) = self.raw(&name)? else {
            return Ok(None);
        };
        if dims.iter().product::<usize>() != len {
            return Err(GenerateError::Model(format!(
                "tensor {name} is {dims:?}, expected [{len}]"
            )));
        }
        Self::dequantized(&name, dtype, &dims, bytes).map(Some)
    }
}

impl LlamaModel {
    /// Loads a llama or qwen2 GGUF file.
    pub fn load_gguf(path: &Path) -> Result<Self, GenerateError> {
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
        let Some((_, rope_style)) = ARCHITECTURES.iter().find(|(a, _)| *a == arch) else {
            return Err(GenerateError::Model(format!(
                "{}: architecture {arch:?} is not supported (llama and qwen2 are)",
                path.display()
            )));
        };
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = meta_u32(md, &key("attention.head_count"))?;
        let n_embd = meta_u32(md, &key("embedding_length"))?;
        // The embedding's rows: the vocabulary list can be shorter (padded
        // embeddings) and the logits must cover every row.
        let vocab_size = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| GenerateError::Model("the GGUF file has no token_embd.weight".into()))?;
        let config = Config {
            n_layer: meta_u32(md, &key("block_count"))?,
            n_embd,
            n_head,
            n_head_kv: meta_u32(md, &key("attention.head_count_kv")).unwrap_or(n_head),
            n_ff: meta_u32(md, &key("feed_forward_length"))?,
            rope_base: meta_f32(md, &key("rope.freq_base"), 10_000.0),
            rope_style: *rope_style,
            eps: meta_f32(md, &key("attention.layer_norm_rms_epsilon"), 1e-5),
            context_length: meta_u32(md, &key("context_length")).unwrap_or(2048),
            vocab_size,
        };
        if let Some(dims) = md
            .get(&key("rope.dimension_count"))
            .and_then(|v| v.to_u32().ok())
        {
            if dims as usize != n_embd / n_head.max(1) {
                return Err(GenerateError::Model(format!(
                    "{}: partial RoPE ({dims} of {} dimensions) is not supported",
                    path.display(),
                    n_embd / n_head.max(1)
                )));
            }
        }
        Self::from_weights(config, &GgufWeights { bytes, content }).map_err(|e| match e {
            GenerateError::Model(m) => GenerateError::Model(format!("{}: {m}", path.display())),
            e => e,
        })
    }
}
