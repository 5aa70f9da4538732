//! Prometheus metrics, served as text on their own HTTP port
//! (`--metrics-listen`, `GET /metrics`).
//!
//! Per method: calls by status code and a latency histogram, recorded by
//! [`observed`] around each handler. Loads: documents by outcome and
//! chunks embedded. At scrape time, from the engine: model state, queue
//! depths, tokens generated, and each collection's documents and chunks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use quarry_engine::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::{Response, Status};
use tracing::Instrument;

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Documents a load (Upsert or BulkIngest) handled, by outcome.
    pub documents: IntCounterVec,
    /// Chunk texts a load embedded.
    pub chunks_embedded: IntCounter,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "quarry_requests_total",
                "gRPC calls by method and status code",
            ),
            &["method", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "quarry_request_duration_seconds",
                "Time to answer a gRPC call (streams: to their first message)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["method"],
        )
        .expect("valid metric");
        let documents = IntCounterVec::new(
            Opts::new(
                "quarry_ingest_documents_total",
                "Documents loaded by Upsert and BulkIngest, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let chunks_embedded = IntCounter::new(
            "quarry_ingest_chunks_embedded_total",
            "Chunk texts embedded by loads",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(documents.clone()),
            Box::new(chunks_embedded.clone()),
        ] {
            registry.register(m).expect("registered once");
        }
        Self {
            registry,
            requests,
            latency,
            documents,
            chunks_embedded,
        }
    }

    /// Counts a load's outcome.
    pub fn loaded(&self, added: u64, updated: u64, unchanged: u64, failed: u64, embedded: u64) {
        for (outcome, n) in [
            ("added", added),
            ("updated", updated),
            ("unchanged", unchanged),
            ("failed", failed),
        ] {
            self.documents.with_label_values(&[outcome]).inc_by(n);
        }
        self.chunks_embedded.inc_by(embedded);
    }

    /// The exposition text: the registry, then the engine's gauges.
    pub async fn render(&self, engine: &Engine) -> String {
        let extra = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            extra
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let stats = engine.stats();
        let models = gauge(
            "quarry_model_loaded",
            "1 for each loaded model, by kind and source",
            &["kind", "source"],
        );
        models
            .with_label_values(&["embedder", &stats.embed_model])
            .set(1);
        let waiting = gauge(
            "quarry_queue_waiting",
            "Requests waiting for a model thread",
            &["queue"],
        );
        waiting
            .with_label_values(&["embed"])
            .set(stats.embed_waiting as i64);
        let totals = gauge(
            "quarry_model_work_total",
            "Work done by the model threads since start",
            &["what"],
        );
        totals
            .with_label_values(&["texts_embedded"])
            .set(stats.embedded_texts as i64);
        if let (Some(source), Some(g)) = (&stats.generate_model, &stats.generation) {
            models.with_label_values(&["generator", source]).set(1);
            waiting
                .with_label_values(&["generate"])
                .set(g.waiting as i64);
            for (what, n) in [
                ("tokens_generated", g.generated_tokens),
                ("prompt_tokens", g.prompt_tokens),
                ("prompt_tokens_cached", g.prompt_tokens_cached),
                ("generations_finished", g.finished),
                ("generations_cancelled", g.cancelled),
                ("generations_failed", g.failed),
                ("generate_steps", g.steps),
                ("generate_stepped_sequences", g.stepped_sequences),
            ] {
                totals.with_label_values(&[what]).set(n as i64);
            }
            let batch = gauge(
                "quarry_generate_batch",
                "The generation batch now: sequences in flight, the cache bytes reserved by \
                 them and the kept prompt prefixes, the cache budget, and the prefixes kept",
                &["what"],
            );
            for (what, n) in [
                ("sequences", g.running),
                ("kv_reserved_bytes", g.kv_reserved_bytes),
                ("kv_budget_bytes", g.kv_budget_bytes),
                ("prefixes", g.prefixes),
            ] {
                batch.with_label_values(&[what]).set(n as i64);
            }
        }
        gauge(
            "quarry_store_writes_failed",
            "1 once a write to the data directory failed on the disk (writes are refused until \
             a restart)",
            &[],
        )
        .with_label_values(&[] as &[&str])
        .set(i64::from(stats.disk_writes_failed));
        let sizes = gauge(
            "quarry_collection_size",
            "Documents and chunks (indexed vectors) per collection",
            &["collection", "unit"],
        );
        if let Ok(collections) = engine.list_collections().await {
            for c in collections {
                let name = c.name.to_string();
                sizes
                    .with_label_values(&[&name, "documents"])
                    .set(c.document_count as i64);
                sizes
                    .with_label_values(&[&name, "chunks"])
                    .set(c.chunk_count as i64);
                sizes
                    .with_label_values(&[&name, "hnsw_chunks"])
                    .set(c.indexed.dense as i64);
                sizes
                    .with_label_values(&[&name, "bm25_chunks"])
                    .set(c.indexed.keyword as i64);
            }
        }
        let mut families = self.registry.gather();
        families.extend(extra.gather());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// A new request id: the process's start time and a counter, in hex, so
/// that ids are unique across restarts and sort by arrival.
fn request_id() -> String {
    static START: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    format!("{start:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs a handler under a request id (a tracing span, so every log line
/// of the call carries it, and the `x-request-id` response header),
/// counting its status code and timing it under `method`.
pub async fn observed<T>(
    method: &'static str,
    handler: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let id = request_id();
    let span = tracing::info_span!("call", method, request_id = %id);
    let mut result = handler.instrument(span.clone()).await;
    let m = global();
    let code = match &mut result {
        Ok(response) => {
            if let Ok(v) = id.parse() {
                response.metadata_mut().insert("x-request-id", v);
            }
            tonic::Code::Ok
        }
        Err(s) => {
            // On errors too: the HTTP API puts it in its error body.
            if let Ok(v) = id.parse() {
                s.metadata_mut().insert("x-request-id", v);
            }
            s.code()
        }
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| match code {
        tonic::Code::Ok => tracing::debug!(?code, ms, "call answered"),
        tonic::Code::Internal | tonic::Code::Unavailable => {
            tracing::warn!(?code, ms, "call failed")
        }
        _ => tracing::info!(?code, ms, "call refused"),
    });
    m.requests
        .with_label_values(&[method, &format!("{code:?}")])
        .inc();
    m.latency
        .with_label_values(&[method])
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Serves `GET /metrics` (and `GET /` for a pointer) until `stop` turns
/// true. A deliberately small HTTP/1.1 responder: one request per
/// connection, headers read up to 8 KiB.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let line = String::from_utf8_lossy(&buf);
            let first = line.lines().next().unwrap_or("");
            let (status, kind, body) = if first.starts_with("GET /metrics") {
                (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    global().render(&engine).await,
                )
            } else if first.starts_with("GET ") {
                ("404 Not Found", "text/plain", "see /metrics\n".to_owned())
            } else {
                (
                    "405 Method Not Allowed",
                    "text/plain",
                    "GET only\n".to_owned(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
