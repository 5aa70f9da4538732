#!/usr/bin/env python3
"""Greedy continuations from llama.cpp for a GGUF file, as a fixture.

Usage: VENV/bin/python scripts/gguf_greedy_reference.py MODEL.gguf OUT.json

Needs llama-cpp-python. Each prompt below (raw text or a ChatML chat) is
tokenized by llama.cpp (add_bos=False, special=True) and continued for 24
tokens by greedy decoding (top_k=1, temperature 0, no repetition penalty)
on 2 threads. Quarry's greedy decoding of the same prompt ids must agree
for at least the first 16 tokens in at least 4 of the 5
(crates/quarry-generate/tests/generate/greedy.rs).

The qwen2 fixtures come from files derived from SmolLM2's GGUF by the
tests themselves (crates/quarry-generate/tests/derive/mod.rs):

    QUARRY_DERIVED_OUT=/tmp/derived cargo test --workspace --test generate formats::
    VENV/bin/python scripts/gguf_greedy_reference.py /tmp/derived/smollm2-qwen2.gguf \
        crates/quarry-generate/tests/fixtures/smollm2_qwen2_greedy.json
    (and smollm2-qwen2-q4k.gguf -> smollm2_qwen2_q4k_greedy.json)
"""
import json
import sys

from llama_cpp import Llama, __version__

CHAT = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"

PROMPTS = [
    CHAT.format("What is the capital of France?"),
    CHAT.format("Write a haiku about the sea."),
    CHAT.format("Context: [1] The Eiffel Tower is 330 metres tall and stands in Paris.\n"
                "Question: How tall is the Eiffel Tower? Cite the passage."),
    "The three primary colors are",
    "def fibonacci(n):\n",
]
NEW_TOKENS = 24


def main():
    model, out = sys.argv[1], sys.argv[2]
    llm = Llama(model_path=model, n_ctx=2048, n_threads=2, seed=0, verbose=False)
    cases = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        generated = []
        for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0,
                                repeat_penalty=1.0, reset=True):
            generated.append(tok)
            if tok == llm.token_eos() or len(generated) >= NEW_TOKENS:
                break
        cases.append({"prompt": prompt, "prompt_ids": ids, "greedy_ids": generated,
                      "greedy_text": llm.detokenize(generated).decode("utf-8", "replace")})
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"llama_cpp_python": __version__, "model": model.split("/")[-1],
                   "new_tokens": NEW_TOKENS, "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"{len(cases)} prompts written to {out}")


if __name__ == "__main__":
    main()
