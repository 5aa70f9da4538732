//! The `quarry` binary: `quarry serve` runs the server; every other
//! subcommand is a gRPC client of a running server.

mod cli;
mod serve;

/// mimalloc instead of the system allocator: model forward passes allocate
/// and free large tensors constantly, and glibc returns them to the kernel
/// (page faults on every reuse); mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Quarry: a retrieval-augmented generation server with an embedded vector
/// store.
#[derive(Debug, Parser)]
#[command(name = "quarry", version, about)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, env = "QUARRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one command: fetch the models, serve, load Quarry's
    /// documentation, answer a sample question, keep serving.
    Quickstart(cli::quickstart::QuickstartArgs),
    /// Run the server.
    Serve(quarry::config::ServeArgs),
    /// Create, inspect, list and delete collections.
    #[command(subcommand)]
    Collections(cli::collections::CollectionsCommand),
    /// Embed texts with the server's sentence embedder.
    Embed(cli::embed::EmbedArgs),
    /// Search a collection.
    Search(cli::search::SearchArgs),
    /// Load files (JSONL, BEIR, folders of .txt/.md/.html, .gz) into a
    /// collection of a running server.
    Ingest(cli::ingest::IngestArgs),
    /// Ask a question; the answer streams, then its numbered sources.
    Ask(cli::ask::AskArgs),
    /// List, show, rate, export and delete the records of past asks.
    #[command(subcommand)]
    History(cli::history::HistoryCommand),
    /// Retrieval quality (nDCG@10, Recall@100, MRR@10) on a BEIR folder;
    /// `eval ask QA.jsonl`: answer quality of a running server.
    Eval(cli::eval::EvalCommand),
    /// Copy an embedded data directory (collections with their vectors,
    /// and records) into a Qdrant cluster, resumably, and verify counts.
    Migrate(cli::migrate::MigrateArgs),
    /// Create and list API keys (edits the keys file).
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Fetch and list models in the local cache.
    #[command(subcommand)]
    Models(cli::models::ModelsCommand),
    /// Benchmarks of Quarry's components (run a release build).
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

fn init_logging(format: LogFormat) {
    // RUST_LOG overrides; by default Quarry logs at info and its
    // dependencies at warn.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,quarry=info,quarry_engine=info,quarry_store=info,quarry_index=info",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Quickstart(args) => runtime.block_on(cli::quickstart::run(args)),
        Command::Collections(cmd) => runtime.block_on(cli::collections::run(cmd)),
        Command::Embed(args) => runtime.block_on(cli::embed::run(args)),
        Command::Search(args) => runtime.block_on(cli::search::run(args)),
        Command::Ask(args) => runtime.block_on(cli::ask::run(args)),
        Command::Ingest(args) => runtime.block_on(cli::ingest::run(args)),
        Command::History(cmd) => runtime.block_on(cli::history::run(cmd)),
        Command::Eval(cmd) => runtime.block_on(cli::eval::run_command(cmd)),
        Command::Models(cmd) => cli::models::run(cmd),
        Command::Migrate(args) => cli::migrate::run(args),
        Command::Keys(cmd) => cli::keys::run(cmd),
        Command::Bench(cmd) => cli::bench::run(cmd, &runtime),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A client's output piped into `head` and closed early ends the process
    // quietly, as for other Unix tools, instead of a panic on a failed
    // print. Not for the server: there a closed socket must be an error,
    // not a signal that kills it.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_) | Command::Quickstart(_)) {
        // SAFETY: restoring the default disposition of SIGPIPE before any
        // thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error chain on one line; no backtrace: these are messages
            // for people, not panics.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
