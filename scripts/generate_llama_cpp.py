#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on the prompt `quarry bench generate
--export FILE` wrote: prefill tokens/s, time to first token and decode
tokens/s, same GGUF, same thread count, best of --runs.

Usage: VENV/bin/python scripts/generate_llama_cpp.py MODEL.gguf PROMPT.json [--threads 2] [--runs 3] [--json]
"""
import argparse
import json
import time

import numpy as np
from llama_cpp import Llama, __version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    spec = json.load(open(args.prompt))
    ids, decode = spec["prompt_ids"], spec["decode"]
    llm = Llama(model_path=args.model, n_ctx=4096, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    n_vocab = llm.n_vocab()

    def last_logits():
        # Without logits_all the binding keeps no scores: read llama.cpp's
        # buffer for the last evaluated token directly.
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))

    best_prefill = best_decode = float("inf")
    for _ in range(max(1, args.runs)):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        nxt = int(np.argmax(last_logits()))
        best_prefill = min(best_prefill, time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(decode - 1):
            llm.eval([nxt])
            nxt = int(np.argmax(last_logits()))
        best_decode = min(best_decode, time.perf_counter() - t)
    report = {"implementation": f"llama.cpp (llama-cpp-python {__version__})",
              "threads": args.threads, "prompt_tokens": len(ids),
              "prefill_seconds": best_prefill,
              "prefill_tokens_per_second": len(ids) / best_prefill,
              "time_to_first_token_seconds": best_prefill,
              "decode_tokens": decode - 1,
              "decode_tokens_per_second": (decode - 1) / best_decode}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['implementation']}: {len(ids)} prompt tokens, {args.threads} threads")
        print(f"prefill {report['prefill_tokens_per_second']:.1f} tokens/s, time to first token "
              f"{best_prefill:.3f} s, decode {report['decode_tokens_per_second']:.1f} tokens/s "
              f"(best of {args.runs})")


if __name__ == "__main__":
    main()
