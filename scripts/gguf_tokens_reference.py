#!/usr/bin/env python3
"""Token ids from llama.cpp's own tokenizer for a GGUF file, as a fixture.

Usage: VENV/bin/python scripts/gguf_tokens_reference.py MODEL.gguf OUT.json

Needs llama-cpp-python (pip install llama-cpp-python; it builds llama.cpp).
Loads the file with vocab_only=True and tokenizes each string below with
add_bos=False and special=True (control tokens such as <|im_start|> in the
text become their ids, as in a rendered chat prompt). Quarry's tokenizer,
built from the same file's metadata, must give the same ids
(crates/quarry-generate/tests/generate/tokenizer.rs).
"""
import json
import sys

from llama_cpp import Llama, __version__

STRINGS = [
    # plain English
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "  leading spaces and trailing  ",
    "It's a dog's life, isn't it? They'll say we'd've done it.",
    "UPPER lower MiXeD CaSe",
    "retrieval-augmented generation (RAG) cites its sources [1][2].",
    # numbers and digit runs
    "3.14159",
    "1234567890",
    "Call 555-0123 or +1 (800) 555 0199 before 2026-11-27.",
    "The year 1999 and 20000 leagues, 7 8 9.",
    "0.000001 1e-10 1,000,000",
    # code
    "fn main() {\n    println!(\"hi\");\n}",
    "def f(x):\n\treturn x ** 2  # square\n",
    "if (a && b || !c) { x += 1; }",
    "<div class=\"x\">&amp;</div>",
    "SELECT * FROM t WHERE id = 42;",
    "import numpy as np\nnp.zeros((3, 4))",
    # whitespace runs
    "a  b   c    d",
    "line one\nline two\n\nline four",
    "\n\n\n",
    "tabs\t\there",
    "   ",
    "trailing newline\n",
    "\r\nwindows\r\n",
    # non-Latin scripts
    "Привет, мир! Как дела?",
    "你好，世界。今天天气很好。",
    "こんにちは世界、カタカナとひらがな",
    "안녕하세요 세계",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "Tiếng Việt có dấu",
    "Ærøskøbing Straße naïve café",
    # emoji
    "I love pizza 🍕🍕!",
    "👍🏽 thumbs up with skin tone",
    "👨‍👩‍👧‍👦 family",
    "🇫🇷 flag and ❤️ heart",
    # chat special tokens
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>",
    "<|endoftext|>",
    "text<|im_end|>more",
    "<file_sep><filename>a.py",
    # mixed
    "Price: €42.50 (≈ $45) — 50% off!",
    "email: someone@example.com, url: https://example.com/a?b=c&d=e",
    "math: ∑ x² ≤ ∞, α β γ",
]


def main():
    model, out = sys.argv[1], sys.argv[2]
    llm = Llama(model_path=model, vocab_only=True, verbose=False)
    cases = []
    for s in STRINGS:
        ids = llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)
        cases.append({"text": s, "ids": ids})
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"llama_cpp_python": __version__, "model": model.split("/")[-1],
                   "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"{len(cases)} strings written to {out}")


if __name__ == "__main__":
    main()
