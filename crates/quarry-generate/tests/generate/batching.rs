//! Continuous batching with SmolLM2: sequences decoded together get the
//! tokens they get alone, bit for bit (the model's batched pass, and the
//! queue's scheduler with prompts of mixed lengths joining while others
//! decode); a cancelled sequence frees its slot and its cache for the
//! next; a request whose cache could never fit the budget is refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use quarry_generate::llama::BatchStep;
use quarry_generate::{
    Event, FinishReason, GenerateConfig, GenerateError, GenerateQueue, LlamaModel, Message,
};

use crate::{greedy, path};

/// Prompts of very different lengths (8 to about 700 tokens).
fn questions() -> Vec<String> {
    vec![
        "Hi!".to_string(),
        "What is the capital of France?".to_string(),
        format!(
            "{}\nSummarise the text above in one sentence.",
            "Otters are semiaquatic mammals that eat fish, crayfish and frogs. ".repeat(50)
        ),
        "Write a haiku about the sea.".to_string(),
    ]
}

fn tokenize(path: &std::path::Path, text: &str) -> Vec<u32> {
    let vocab =
        quarry_generate::vocab_from_gguf(&quarry_generate::read_gguf_metadata(path).unwrap())
            .unwrap();
    vocab
        .tokenizer
        .encode(text, false)
        .unwrap()
        .get_ids()
        .to_vec()
}

/// The model's batched pass, driven by hand: four prompts read in slices
/// of different sizes, each joining while the others already decode, give
/// every sequence the logits (bit for bit) and greedy tokens it gets
/// alone.
#[test]
fn a_batched_pass_gives_each_sequence_its_logits_alone() {
    let path = path();
    let model = LlamaModel::load(&path).unwrap();
    let prompts: Vec<Vec<u32>> = questions().iter().map(|q| tokenize(&path, q)).collect();
    let steps = 12;
    // Alone: the whole prompt at once, then token by token.
    let mut alone: Vec<Vec<Vec<f32>>> = Vec::new();
    for p in &prompts {
        let mut cache = model.new_cache(p.len() + steps);
        let mut logits = vec![model.forward(p, &mut cache, true).unwrap().unwrap()];
        for _ in 1..steps {
            let next = quarry_generate::argmax(logits.last().unwrap());
            logits.push(model.forward(&[next], &mut cache, true).unwrap().unwrap());
        }
        alone.push(logits);
    }
    // Together: sequence i starts reading its prompt at pass i, in slices
    // of 7 + 50 i tokens, while the earlier ones decode.
    let mut caches: Vec<_> = prompts
        .iter()
        .map(|p| model.new_cache(p.len() + steps))
        .collect();
    let mut read = vec![0usize; prompts.len()];
    let mut next = vec![0u32; prompts.len()];
    let mut got: Vec<Vec<Vec<f32>>> = vec![Vec::new(); prompts.len()];
    let mut pass = 0;
    while got.iter().any(|g| g.len() < steps) {
        let mut which = Vec::new();
        let mut batch = Vec::new();
        for (i, cache) in caches.iter_mut().enumerate() {
            if i > pass || got[i].len() >= steps {
                continue;
            }
            let p = &prompts[i];
            let (tokens, logits) = if read[i] < p.len() {
                let end = (read[i] + 7 + 50 * i).min(p.len());
                let slice = &p[read[i]..end];
                read[i] = end;
                (slice, end == p.len())
            } else {
                (std::slice::from_ref(&next[i]), true)
            };
            which.push(i);
            batch.push(BatchStep {
                tokens,
                cache,
                logits,
            });
        }
        let out = model.forward_batch(&mut batch).unwrap();
        for (i, logits) in which.into_iter().zip(out) {
            if let Some(logits) = logits {
                next[i] = quarry_generate::argmax(&logits);
                got[i].push(logits);
            }
        }
        pass += 1;
    }
    for (i, (a, b)) in alone.iter().zip(&got).enumerate() {
        for (step, (x, y)) in a.iter().zip(b).enumerate() {
            let same =
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(
                same,
                "sequence {i} step {step}: batched logits differ from alone"
            );
        }
    }
}

/// Reads every event: (text, finish).
async fn collect(mut rx: tokio::sync::mpsc::Receiver<Event>) -> (String, quarry_generate::Finish) {
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done(finish) => return (text, finish),
        }
    }
    panic!("the stream closed without Done");
}

/// Through the queue: the four prompts at once (and the long one twice)
/// stream the texts the greedy decode gives each alone, and the passes
/// carried several sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_asks_stream_what_each_gets_alone() {
    let path = path();
    let config = GenerateConfig {
        queue_capacity: 16,
        batch: 4,
        prefill_chunk: 64,
        ..GenerateConfig::default()
    };
    let queue = GenerateQueue::start(&path, config).unwrap();
    let mut prompts: Vec<String> = questions()
        .iter()
        .map(|q| queue.render(&[Message::new("user", q.as_str())]).unwrap())
        .collect();
    prompts.push(prompts[2].clone());
    let receivers: Vec<_> = prompts
        .iter()
        .map(|p| queue.submit(p, greedy(24)).unwrap())
        .collect();
    let mut results = Vec::new();
    for rx in receivers {
        results.push(collect(rx).await);
    }

    let model = LlamaModel::load(&path).unwrap();
    let vocab =
        quarry_generate::vocab_from_gguf(&quarry_generate::read_gguf_metadata(&path).unwrap())
            .unwrap();
    let end_of_turn: Vec<u32> = vocab.control.iter().map(|(id, _)| *id).collect();
    for (prompt, (text, finish)) in prompts.iter().zip(&results) {
        let ids = tokenize(&path, prompt);
        assert_eq!(finish.prompt_tokens, ids.len());
        let mut want = model.greedy(&ids, 24, &end_of_turn).unwrap();
        if want.last().is_some_and(|t| end_of_turn.contains(t)) {
            want.pop();
            assert_eq!(finish.reason, FinishReason::EndOfTurn);
        } else {
            assert_eq!(finish.reason, FinishReason::Length);
        }
        assert_eq!(finish.completion_tokens, want.len());
        assert_eq!(
            text,
            &vocab.tokenizer.decode(&want, true).unwrap(),
            "{prompt}"
        );
    }
    let stats = queue.stats();
    assert!(
        stats.stepped_sequences > stats.steps,
        "no pass carried two sequences: {stats:?}"
    );
    assert_eq!(stats.running, 0, "{stats:?}");
    assert!(
        stats.kv_reserved_bytes == 0 || stats.prefixes > 0,
        "only kept prefixes hold cache: {stats:?}"
    );
    assert_eq!(stats.finished, 5, "{stats:?}");
}

/// Prompts that open with the same long instructions: once two have
/// shared them, the third starts from a copy of their cache, reads only
/// its own question, and answers exactly what it answers read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prompt_prefix_is_read_once_and_changes_nothing() {
    let path = path();
    let config = GenerateConfig {
        batch: 1,
        ..GenerateConfig::default()
    };
    let queue = GenerateQueue::start(&path, config).unwrap();
    let rules = "Answer from the evidence only, in one short sentence, and cite it. ".repeat(8);
    let prompts: Vec<String> = ["Who wrote Hamlet?", "What is 2 + 2?", "Name a red fruit."]
        .iter()
        .map(|q| {
            queue
                .render(&[Message::new("system", &rules), Message::new("user", *q)])
                .unwrap()
        })
        .collect();
    let mut texts = Vec::new();
    for p in &prompts {
        texts.push(collect(queue.submit(p, greedy(12)).unwrap()).await.0);
    }
    let stats = queue.stats();
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| tokenize(&path, p)).collect();
    let shared = ids[0]
        .iter()
        .zip(&ids[1])
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared > 64, "{shared}");
    assert_eq!(stats.prefixes, 1, "{stats:?}");
    assert_eq!(stats.prompt_tokens_cached, shared as u64, "{stats:?}");
    assert_eq!(
        stats.prompt_tokens,
        (ids.iter().map(Vec::len).sum::<usize>() - shared) as u64,
        "{stats:?}"
    );

    let model = LlamaModel::load(&path).unwrap();
    let vocab =
        quarry_generate::vocab_from_gguf(&quarry_generate::read_gguf_metadata(&path).unwrap())
            .unwrap();
    let end_of_turn: Vec<u32> = vocab.control.iter().map(|(id, _)| *id).collect();
    let mut want = model.greedy(&ids[2], 12, &end_of_turn).unwrap();
    if want.last().is_some_and(|t| end_of_turn.contains(t)) {
        want.pop();
    }
    assert_eq!(texts[2], vocab.tokenizer.decode(&want, true).unwrap());
}

/// With room in the cache budget for one sequence only, the second waits;
/// cancelling the first frees its slot and its cache, and the second
/// runs to its end. A request that could never fit is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_sequence_frees_its_slot_and_cache() {
    let path = path();
    let model = LlamaModel::load(&path).unwrap();
    let per_token = model.kv_bytes_per_token();
    drop(model);
    let long = 400;
    let probe = GenerateQueue::start(&path, GenerateConfig::default()).unwrap();
    let prompt = probe
        .render(&[Message::new(
            "user",
            "Tell me a very long story about a lighthouse.",
        )])
        .unwrap();
    let prompt_tokens = tokenize(&path, &prompt).len();
    drop(probe);
    let config = GenerateConfig {
        queue_capacity: 4,
        batch: 4,
        // One more token than the prompt holds: room for a BOS.
        kv_budget_bytes: (prompt_tokens + 1 + long) * per_token,
        ..GenerateConfig::default()
    };
    let queue = GenerateQueue::start(&path, config).unwrap();

    match queue.submit(&prompt, greedy(long + 2)) {
        Err(e @ GenerateError::KvBudget { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("--generate-kv-budget-mib"), "{msg}");
        }
        other => panic!("expected KvBudget, got {:?}", other.map(|_| ())),
    }

    let cancel = Arc::new(AtomicBool::new(false));
    let mut first = queue
        .submit_cancellable(&prompt, greedy(long), Arc::clone(&cancel))
        .unwrap();
    // The first is streaming before the second arrives.
    match first.recv().await {
        Some(Event::Text(_)) => {}
        other => panic!("expected text, got {other:?}"),
    }
    let second = queue.submit(&prompt, greedy(long)).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stats = queue.stats();
    assert_eq!(stats.running, 1, "the budget held one: {stats:?}");
    assert!(
        stats.kv_reserved_bytes > 0 && stats.kv_reserved_bytes <= config.kv_budget_bytes as u64,
        "{stats:?}"
    );
    cancel.store(true, Ordering::Relaxed);
    let (_, finish) = collect(first).await;
    assert_eq!(finish.reason, FinishReason::Cancelled);
    assert!(finish.completion_tokens < long, "{finish:?}");
    let (text, finish) = collect(second).await;
    assert!(
        matches!(
            finish.reason,
            FinishReason::Length | FinishReason::EndOfTurn
        ),
        "{finish:?}"
    );
    assert!(!text.is_empty());
    let stats = queue.stats();
    assert_eq!(
        (stats.running, stats.kv_reserved_bytes),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!((stats.cancelled, stats.finished), (1, 1), "{stats:?}");
}
