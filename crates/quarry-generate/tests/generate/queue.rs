//! The generation thread behind its queue, with SmolLM2: streamed text
//! equals the greedy decode, a prompt that does not fit the context window
//! is refused with both lengths, a full queue says so, and a generation
//! whose reader went away does not hold the thread (not even through a
//! long prefill).

use crate::{greedy, path};
use quarry_generate::{
    Event, FinishReason, GenerateConfig, GenerateError, GenerateQueue, LlamaModel, Message,
    SamplingParams,
};

/// A queue of `capacity` waiting requests, decoding `batch` at once.
fn config(capacity: usize, batch: usize) -> GenerateConfig {
    GenerateConfig {
        queue_capacity: capacity,
        batch,
        ..GenerateConfig::default()
    }
}

/// Reads every event: (text, finish).
fn collect(mut rx: tokio::sync::mpsc::Receiver<Event>) -> (String, quarry_generate::Finish) {
    let mut text = String::new();
    while let Some(event) = rx.blocking_recv() {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done(finish) => return (text, finish),
        }
    }
    panic!("the stream closed without Done");
}

#[test]
fn streamed_text_is_the_greedy_continuation() {
    let path = path();
    let queue = GenerateQueue::start(&path, config(4, 4)).unwrap();
    let prompt = queue
        .render(&[Message::new("user", "What is the capital of France?")])
        .unwrap();
    let (text, finish) = collect(queue.submit(&prompt, greedy(20)).unwrap());
    assert!(finish.completion_tokens <= 20);
    assert!(
        matches!(
            finish.reason,
            FinishReason::Length | FinishReason::EndOfTurn
        ),
        "{finish:?}"
    );

    let model = LlamaModel::load(&path).unwrap();
    let vocab =
        quarry_generate::vocab_from_gguf(&quarry_generate::read_gguf_metadata(&path).unwrap())
            .unwrap();
    let ids = vocab.tokenizer.encode(prompt.as_str(), false).unwrap();
    assert_eq!(finish.prompt_tokens, ids.len());
    let end_of_turn: Vec<u32> = vocab.control.iter().map(|(id, _)| *id).collect();
    let want = model.greedy(ids.get_ids(), 20, &end_of_turn).unwrap();
    assert_eq!(text, vocab.tokenizer.decode(&want, true).unwrap());
    assert!(text.chars().count() >= 9, "{text:?}");

    // A stop sequence ends it early, unseen.
    let cut: String = text.chars().skip(5).take(4).collect();
    let params = SamplingParams {
        stop: vec![cut.clone()],
        ..greedy(20)
    };
    let (short, finish) = collect(queue.submit(&prompt, params).unwrap());
    assert_eq!(finish.reason, FinishReason::Stop);
    assert!(
        text.starts_with(&short) && !short.contains(&cut),
        "{short:?} / {cut:?}"
    );
}

#[test]
fn refusals_name_the_limits_and_a_gone_reader_frees_the_thread() {
    let queue = GenerateQueue::start(&path(), config(1, 1)).unwrap();
    let long = "word ".repeat(6000);
    match queue.submit(&long, greedy(4096)) {
        Err(GenerateError::InvalidArgument(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("prompt") && msg.contains("4096") && msg.contains("8192"),
                "{msg}"
            );
        }
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
    let bad = SamplingParams {
        top_p: 2.0,
        ..greedy(4)
    };
    assert!(matches!(
        queue.submit("hi", bad),
        Err(GenerateError::InvalidArgument(_))
    ));

    // One running and one waiting fill a queue of capacity 1.
    let mut receivers = Vec::new();
    let mut full = false;
    for _ in 0..4 {
        match queue.submit("Tell me a long story.", greedy(64)) {
            Ok(rx) => receivers.push(rx),
            Err(GenerateError::QueueFull { capacity }) => {
                assert_eq!(capacity, 1);
                full = true;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full, "a queue of 1 took 4 requests");
    // Readers that go away: their generations end, and the thread serves
    // the next request.
    drop(receivers);
    let mut next = None;
    for _ in 0..200 {
        match queue.submit("Say hi.", greedy(2)) {
            Ok(rx) => {
                next = Some(rx);
                break;
            }
            Err(GenerateError::QueueFull { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (_, finish) = collect(next.expect("the queue drained"));
    assert!(finish.completion_tokens <= 2);
}

#[test]
fn a_reader_gone_during_a_long_prefill_stops_it_within_a_slice() {
    let queue = GenerateQueue::start(&path(), config(2, 1)).unwrap();
    // About 1,500 prompt tokens: six prefill slices.
    let prompt = "The quick brown fox jumps over the lazy dog. ".repeat(150);
    let rx = queue.submit(&prompt, greedy(8)).unwrap();
    drop(rx);
    let (_, finish) = collect(queue.submit("Say hi.", greedy(2)).unwrap());
    assert!(finish.completion_tokens <= 2);
    let stats = queue.stats();
    assert_eq!(stats.cancelled, 1, "{stats:?}");
    assert_eq!(stats.finished, 1, "{stats:?}");
    // The cancelled prompt ran at most one slice (the reader left before
    // the thread could look), then the short one ran whole.
    assert!(
        stats.prompt_tokens <= 256 + finish.prompt_tokens as u64,
        "{stats:?}"
    );
    assert_eq!(stats.generated_tokens, finish.completion_tokens as u64);
}
