//! Greedy decoding of SmolLM2's GGUF by Quarry's decoder against llama.cpp's
//! greedy output on the same file (fixture: scripts/gguf_greedy_reference.py,
//! llama-cpp-python 0.3.36, 2 threads); the prompts are tokenized by Quarry
//! and must equal llama.cpp's ids first.
//!
//! 16 agreeing tokens on 4 of the 5 prompts is the goal, and this build
//! reaches it (24, 24, 24 and 21 tokens; the fifth prompt agrees for 7)
//! on a CPU with AVX-512 and on one with only AVX2: the decoder follows
//! ggml's AVX-512 arithmetic step by step, including its vectorised exp
//! in the softmax and SiLU (src/llama/vexp.rs, the same bits on every
//! path). With the C library's exp instead, 2 or 3 prompts agreed (what
//! CPUs without AVX-512 got before). The fifth parts after "L'Étoile, la
//! Cité, la" at a near-tie (the next words are equally plausible list
//! items); which last-bit difference flips it is not found yet.

use quarry_generate::{find_gguf, read_gguf_metadata, vocab_from_gguf, LlamaModel};
use quarry_models::{ModelCache, DEFAULT_GENERATE_MODEL};

const MIN_AGREEING_TOKENS: usize = 16;
/// Prompts that must agree for MIN_AGREEING_TOKENS: 4, on every CPU (the
/// decoder gives the bits of ggml's AVX-512 arithmetic with AVX2 or
/// without either; the fifth prompt meets a near-tie early).
fn min_agreeing_prompts() -> usize {
    4
}

#[test]
fn greedy_continuations_agree_with_llama_cpp() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/smollm2_greedy.json")).unwrap();
    let dir = ModelCache::from_env()
        .fetch(
            &DEFAULT_GENERATE_MODEL.parse().unwrap(),
            &quarry_generate::GGUF_FILES,
        )
        .unwrap();
    let path = find_gguf(&dir).unwrap();
    let model = LlamaModel::load(&path).unwrap();
    let vocab = vocab_from_gguf(&read_gguf_metadata(&path).unwrap()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut agreeing = 0;
    let mut report = Vec::new();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = ids(&case["prompt_ids"]);
        let ours = vocab.tokenizer.encode(prompt, false).unwrap();
        assert_eq!(
            ours.get_ids(),
            prompt_ids.as_slice(),
            "prompt ids of {prompt:?}"
        );
        let want = ids(&case["greedy_ids"]);
        let got = model.greedy(&prompt_ids, want.len(), &[]).unwrap();
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        report.push(format!(
            "{prompt:?}: first {same} tokens agree\n  quarry    {:?}\n  llama.cpp {:?}",
            vocab.tokenizer.decode(&got, false).unwrap(),
            vocab.tokenizer.decode(&want, false).unwrap()
        ));
        if same >= MIN_AGREEING_TOKENS.min(want.len()) {
            agreeing += 1;
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        agreeing >= min_agreeing_prompts(),
        "{agreeing} of 5 agree:\n{}",
        report.join("\n")
    );
}
