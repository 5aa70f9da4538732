//! Correctness against sentence-transformers: the committed fixture holds
//! vectors that sentence-transformers itself produced for the default model
//! (scripts/reference_embeddings.py). Quarry must agree to cosine >= 0.9999
//! for every text, embedded alone and inside mixed batches.

// Helpers outside #[test] functions unwrap too: a failure here is the
// test failing.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use quarry_embed::{EmbedError, EmbedQueue, QueueConfig, SentenceEmbedder, MODEL_FILES};
use quarry_models::{ModelCache, ModelSource, DEFAULT_EMBED_MODEL};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    texts: Vec<String>,
    untruncated_token_counts: Vec<usize>,
    max_seq_length: usize,
    embeddings: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    // Embedded, not read at run time: the build directory is shared
    // between clones, and a binary built in another clone would look there.
    serde_json::from_slice(include_bytes!("fixtures/minilm_reference.json")).unwrap()
}

/// The default model's folder, fetched into the cache on first use.
fn model_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source: ModelSource = DEFAULT_EMBED_MODEL.parse().unwrap();
        ModelCache::from_env()
            .fetch(&source, &MODEL_FILES)
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn assert_close(label: &str, text: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{label}: dimension");
    let c = cosine(got, want);
    assert!(c >= 0.9999, "{label}: cosine {c:.6} for {text:?}");
}

#[test]
fn each_text_alone_matches_sentence_transformers() {
    let fx = fixture();
    assert!(fx.texts.len() >= 30);
    let model = SentenceEmbedder::load(model_dir(), 2).unwrap();
    assert_eq!(model.config().max_seq_length, fx.max_seq_length);
    let mut worst = 1.0f64;
    for (text, want) in fx.texts.iter().zip(&fx.embeddings) {
        let got = model.embed(&[text]).unwrap().remove(0);
        worst = worst.min(cosine(&got, want));
        assert_close("alone", text, &got, want);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
    println!("worst cosine, each text alone: {worst:.7}");
}

#[test]
fn tokenisation_truncates_at_max_seq_length() {
    let fx = fixture();
    let model = SentenceEmbedder::load(model_dir(), 2).unwrap();
    let texts: Vec<&str> = fx.texts.iter().map(String::as_str).collect();
    let encodings = model.tokenize(&texts).unwrap();
    for ((text, enc), full) in texts
        .iter()
        .zip(&encodings)
        .zip(&fx.untruncated_token_counts)
    {
        assert_eq!(enc.len(), (*full).min(fx.max_seq_length), "{text:?}");
    }
    assert!(
        fx.untruncated_token_counts.iter().any(|&n| n > 256),
        "a text must exercise truncation"
    );
}

#[test]
fn mixed_batches_match_sentence_transformers() {
    let fx = fixture();
    let model = SentenceEmbedder::load(model_dir(), 2).unwrap();
    // One forward pass over every text: heavy padding for the short ones.
    let all: Vec<&str> = fx.texts.iter().map(String::as_str).collect();
    let got = model.embed(&all).unwrap();
    for ((text, g), want) in fx.texts.iter().zip(&got).zip(&fx.embeddings) {
        assert_close("one batch", text, g, want);
    }
    // Interleaved long and short texts in small batches.
    let mut order: Vec<usize> = (0..fx.texts.len()).collect();
    order.sort_by_key(|&i| (i * 7) % fx.texts.len());
    for chunk in order.chunks(5) {
        let texts: Vec<&str> = chunk.iter().map(|&i| fx.texts[i].as_str()).collect();
        let got = model.embed(&texts).unwrap();
        for (&i, g) in chunk.iter().zip(&got) {
            assert_close("batch of 5", &fx.texts[i], g, &fx.embeddings[i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_returns_each_callers_vectors_in_order() {
    let fx = fixture();
    // A small token budget forces several forward passes per wake-up.
    let queue = EmbedQueue::start(
        model_dir(),
        QueueConfig {
            workers: 2,
            capacity: 64,
            max_batch_tokens: 300,
            threads_per_worker: 1,
        },
    )
    .unwrap();
    assert_eq!(queue.dimension(), 384);
    let mut calls = Vec::new();
    for start in 0..6 {
        let idx: Vec<usize> = (start..fx.texts.len()).step_by(6).collect();
        let texts: Vec<String> = idx.iter().map(|&i| fx.texts[i].clone()).collect();
        let q = queue.clone();
        calls.push((idx, tokio::spawn(async move { q.embed(texts).await })));
    }
    for (idx, call) in calls {
        let vectors = call.await.unwrap().unwrap();
        assert_eq!(vectors.len(), idx.len());
        for (&i, v) in idx.iter().zip(&vectors) {
            assert_close("queue", &fx.texts[i], v, &fx.embeddings[i]);
        }
    }
    assert!(queue.embed(Vec::new()).await.unwrap().is_empty());
}

#[test]
fn a_full_queue_refuses_instead_of_growing() {
    let queue = EmbedQueue::start(
        model_dir(),
        QueueConfig {
            workers: 1,
            capacity: 1,
            max_batch_tokens: 512,
            threads_per_worker: 1,
        },
    )
    .unwrap();
    let long = "word ".repeat(250);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let q = queue.clone();
        let texts = vec![long.clone(); 16];
        // Submit from plain threads so that submissions outpace the model.
        let handle = std::thread::spawn(move || q.embed_blocking(texts));
        accepted.push(handle);
    }
    for h in accepted {
        match h.join().unwrap() {
            Ok(v) => assert_eq!(v.len(), 16),
            Err(EmbedError::QueueFull { capacity }) => {
                assert_eq!(capacity, 1);
                refused += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(
        refused > 0,
        "20 concurrent requests against a queue of 1 must see a refusal"
    );
}
