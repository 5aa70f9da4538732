//! Text generation: llama-family decoders (llama and qwen2, from GGUF
//! files or safetensors folders: [`llama`], [`ModelFormat`]), the
//! tokenizer built from a GGUF file's own metadata ([`gguf_vocab`]) or read
//! from tokenizer.json ([`hf_vocab`]), chat templates ([`template`]),
//! sampling ([`sampling`]), UTF-8-safe streaming with stop sequences
//! ([`stream`]) and the model thread behind a bounded queue ([`queue`]),
//! which the engine's Ask drives; the thread decodes several sequences in
//! one pass (continuous batching, within a cache budget: [`kv_budget`]).

mod batch;
mod decoder;
mod error;
pub mod gguf_vocab;
pub mod hf_vocab;
pub mod kv_budget;
pub mod llama;
mod model_files;
pub mod prefix;
pub mod priority;
pub mod queue;
pub mod sampling;
pub mod stream;
pub mod template;

pub use decoder::{Decoder, Sequence, Step};
pub use error::GenerateError;
pub use gguf_vocab::{vocab_from_gguf, Vocab};
pub use hf_vocab::vocab_from_hf;
pub use llama::{KvCache, LlamaModel};
pub use model_files::{
    fetch_generator, find_gguf, parse_gguf_metadata, read_gguf_metadata, ModelFormat, GGUF_FILES,
    SAFETENSORS_FILES,
};
pub use queue::{Event, Finish, FinishReason, GenerateConfig, GenerateQueue, QueueStats};
pub use sampling::{argmax, Sampler, SamplingParams};
pub use stream::{Delta, TextStream};
pub use template::{defuse, ChatTemplate, Message};
