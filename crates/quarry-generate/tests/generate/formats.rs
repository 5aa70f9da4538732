//! The other model formats: a safetensors folder and a qwen2 GGUF with a
//! K-quant matrix, both made from SmolLM2's GGUF (see derive/mod.rs).
//!
//! - The safetensors folder gives the same tokens as the GGUF vocabulary
//!   (through its tokenizer.json), the same chat prompt, and next-token
//!   scores close to the GGUF model's (its weights went Q4_1 -> BF16 ->
//!   Q8_0).
//! - The qwen2 file is run by llama.cpp for the fixture
//!   (scripts/gguf_greedy_reference.py); Quarry's greedy output must agree
//!   with it as the llama test does.

use crate::derive;

use quarry_generate::{argmax, ChatTemplate, LlamaModel, Message, ModelFormat};

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn template(format: &ModelFormat) -> String {
    let vocab = format.vocab().unwrap();
    let t = ChatTemplate::new(
        vocab.chat_template.as_deref().unwrap(),
        vocab.bos.as_ref().map_or("", |(_, t)| t),
        vocab.eos.as_ref().map_or("", |(_, t)| t),
    )
    .unwrap();
    t.render(
        &[
            Message::new("system", "Answer from the passages."),
            Message::new("user", "How tall is it?"),
        ],
        true,
    )
    .unwrap()
}

/// Tokens that agree from the start.
fn agreeing(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[test]
fn a_safetensors_folder_runs_like_its_gguf() {
    let gguf = derive::smollm2();
    let dir = tempfile::tempdir().unwrap();
    derive::write_safetensors_folder(&gguf, dir.path());

    let hf = ModelFormat::detect(dir.path()).unwrap();
    assert_eq!(hf, ModelFormat::Safetensors(dir.path().to_path_buf()));
    let original = ModelFormat::detect(&gguf).unwrap();
    let (hf_vocab, gguf_vocab) = (hf.vocab().unwrap(), original.vocab().unwrap());
    let strings: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/smollm2_tokenizer.json")).unwrap();
    for case in strings["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let got = hf_vocab.tokenizer.encode(text, false).unwrap();
        assert_eq!(got.get_ids(), want.as_slice(), "{text:?}");
    }
    assert_eq!(hf_vocab.eos, gguf_vocab.eos);
    assert_eq!(hf_vocab.control, gguf_vocab.control);
    assert_eq!(template(&hf), template(&original));

    let (ours, reference) = (
        LlamaModel::load(dir.path()).unwrap(),
        LlamaModel::load(&gguf).unwrap(),
    );
    assert_eq!(
        ours.config().context_length,
        reference.config().context_length
    );
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/smollm2_greedy.json")).unwrap();
    // The weights went Q4_1 -> BF16 -> Q8_0: the next-token scores must
    // be close everywhere, and each model's choice near the top of the
    // other's list (the first greedy token can differ where two
    // candidates are within the conversion's error).
    let mut report = Vec::new();
    let mut same_first = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let logits = |m: &LlamaModel| {
            let mut cache = m.new_cache(prompt.len());
            m.forward(&prompt, &mut cache, true).unwrap().unwrap()
        };
        let (a, b) = (logits(&ours), logits(&reference));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let spread = b.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v))
            - b.iter().fold(f32::INFINITY, |m, v| m.min(*v));
        let rank = |scores: &[f32], token: u32| {
            scores
                .iter()
                .filter(|v| **v > scores[token as usize])
                .count()
        };
        let (top_a, top_b) = (argmax(&a), argmax(&b));
        report.push(format!(
            "largest score difference {worst:.3} (scores span {spread:.1}); tops {top_a} / {top_b}, ranked {} / {} in the other",
            rank(&b, top_a),
            rank(&a, top_b)
        ));
        assert!(worst < 0.05 * spread, "{}", report.join("\n"));
        assert!(
            rank(&b, top_a) < 3 && rank(&a, top_b) < 3,
            "{}",
            report.join("\n")
        );
        same_first += usize::from(top_a == top_b);
    }
    eprintln!("{}", report.join("\n"));
    assert!(same_first >= 3, "{}", report.join("\n"));
}

/// Derives the qwen2 file (kept under QUARRY_DERIVED_OUT when set) and
/// runs the fixture's prompts; returns per prompt the tokens that agree
/// with llama.cpp and how many llama.cpp produced, and a report.
fn qwen2_against_llama_cpp(k_quant: bool, fixture: &str) -> (Vec<(usize, usize)>, String) {
    let gguf = derive::smollm2();
    let dir = tempfile::tempdir().unwrap();
    let out = match std::env::var_os("QUARRY_DERIVED_OUT") {
        Some(d) => std::path::PathBuf::from(d),
        None => dir.path().to_path_buf(),
    };
    std::fs::create_dir_all(&out).unwrap();
    let name = if k_quant {
        "smollm2-qwen2-q4k.gguf"
    } else {
        "smollm2-qwen2.gguf"
    };
    let path = out.join(name);
    derive::write_qwen2_gguf(&gguf, &path, k_quant);

    let fixture: serde_json::Value = serde_json::from_str(fixture).unwrap();
    assert_eq!(fixture["model"], name);
    let vocab = ModelFormat::detect(&path).unwrap().vocab().unwrap();
    let model = LlamaModel::load(&path).unwrap();
    let mut report = Vec::new();
    let mut results = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = ids(&case["prompt_ids"]);
        let encoded = vocab.tokenizer.encode(prompt, false).unwrap();
        assert_eq!(encoded.get_ids(), prompt_ids.as_slice());
        let want = ids(&case["greedy_ids"]);
        let got = model.greedy(&prompt_ids, want.len(), &[]).unwrap();
        let same = agreeing(&got, &want);
        report.push(format!(
            "{prompt:?}: {same} agree\n  quarry    {:?}\n  llama.cpp {:?}",
            vocab.tokenizer.decode(&got, false).unwrap(),
            vocab.tokenizer.decode(&want, false).unwrap()
        ));
        results.push((same, want.len()));
    }
    let report = report.join("\n");
    eprintln!("{report}");
    (results, report)
}

/// NEOX RoPE, the biases and the qwen2 metadata against llama.cpp. This
/// build: 8 (the whole answer), 24, 22, 15 and 5 tokens agree; the floor
/// is the llama test's.
#[test]
fn a_qwen2_gguf_agrees_with_llama_cpp() {
    let (results, report) =
        qwen2_against_llama_cpp(false, include_str!("../fixtures/smollm2_qwen2_greedy.json"));
    let agree = results
        .iter()
        .filter(|(same, len)| *same >= 16.min(*len))
        .count();
    assert!(agree >= 3, "{agree} of 5 agree:\n{report}");
}

/// K-quant matrices are converted to Q8_0 (no Q4_K kernel here), and
/// llama.cpp multiplies them with Q8_K activations: the products differ
/// by more than in the formats run as stored, so near-ties flip sooner.
/// This build: 24, 11, 8 (the whole answer), 5 and 1 tokens agree.
#[test]
fn a_qwen2_gguf_with_k_quants_runs_close_to_llama_cpp() {
    let (results, report) = qwen2_against_llama_cpp(
        true,
        include_str!("../fixtures/smollm2_qwen2_q4k_greedy.json"),
    );
    assert!(results.iter().all(|(same, _)| *same >= 1), "{report}");
    let agree = results
        .iter()
        .filter(|(same, len)| *same >= 8.min(*len))
        .count();
    assert!(agree >= 3, "{agree} of 5 agree for 8 tokens:\n{report}");
}
