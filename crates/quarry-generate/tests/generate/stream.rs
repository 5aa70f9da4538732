//! Streaming with SmolLM2's real tokenizer: a character split across
//! tokens is never emitted in half, the deltas add up to the decoded text,
//! and a stop sequence ends the stream without being emitted, even when it
//! arrives split across tokens.

use quarry_generate::{find_gguf, read_gguf_metadata, vocab_from_gguf, Delta, TextStream, Vocab};
use quarry_models::{ModelCache, DEFAULT_GENERATE_MODEL};

fn vocab() -> Vocab {
    let dir = ModelCache::from_env()
        .fetch(
            &DEFAULT_GENERATE_MODEL.parse().unwrap(),
            &quarry_generate::GGUF_FILES,
        )
        .unwrap();
    vocab_from_gguf(&read_gguf_metadata(&find_gguf(&dir).unwrap()).unwrap()).unwrap()
}

fn ids(vocab: &Vocab, text: &str) -> Vec<u32> {
    vocab
        .tokenizer
        .encode(text, false)
        .unwrap()
        .get_ids()
        .to_vec()
}

#[test]
fn deltas_are_whole_characters_and_add_up() {
    let vocab = vocab();
    for text in [
        "I love pizza 🍕🍕! 👨‍👩‍👧‍👦 and 你好，世界 — naïve café",
        "plain ascii only",
        "Привет 🇫🇷 مرحبا",
    ] {
        let tokens = ids(&vocab, text);
        let mut stream = TextStream::new(&vocab.tokenizer, Vec::new());
        let mut out = String::new();
        let mut held_back = false;
        for t in tokens {
            match stream.push(t).unwrap() {
                Delta::Text(d) => {
                    assert!(!d.contains('\u{FFFD}'), "half a character in {d:?}");
                    held_back |= d.is_empty();
                    out.push_str(&d);
                }
                Delta::Stop(_) => panic!("no stop sequences here"),
            }
        }
        out.push_str(&stream.finish());
        assert_eq!(out, text);
        if text.contains('🍕') {
            assert!(
                held_back,
                "an emoji spans several tokens, so some push emits nothing"
            );
        }
    }
}

#[test]
fn a_stop_sequence_ends_the_stream_unseen_even_split_across_tokens() {
    let vocab = vocab();
    let text = "The answer is 42.\n\nQuestion: next one";
    let mut stream = TextStream::new(&vocab.tokenizer, vec!["\n\nQuestion:".into()]);
    let mut out = String::new();
    let mut stopped = None;
    for t in ids(&vocab, text) {
        match stream.push(t).unwrap() {
            Delta::Text(d) => out.push_str(&d),
            Delta::Stop(before) => {
                out.push_str(&before);
                stopped = Some(out.clone());
                break;
            }
        }
    }
    assert_eq!(stopped.as_deref(), Some("The answer is 42."));

    // A partial stop sequence at the end is ordinary text.
    let mut stream = TextStream::new(&vocab.tokenizer, vec!["\n\nQuestion:".into()]);
    let mut out = String::new();
    for t in ids(&vocab, "Done.\n\nQuest") {
        if let Delta::Text(d) = stream.push(t).unwrap() {
            out.push_str(&d);
        }
    }
    assert_eq!(
        out, "Done.",
        "the possible start of a stop sequence is held"
    );
    out.push_str(&stream.finish());
    assert_eq!(out, "Done.\n\nQuest");
}
