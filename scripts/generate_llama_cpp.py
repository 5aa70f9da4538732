#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on the prompt `quarry bench generate
--export FILE` wrote: prefill tokens/s, time to first token and decode
tokens/s, same GGUF, same thread count, best of --runs.

With "parallel" in the prompt file (quarry bench generate --parallel
1,4,8,16), also the aggregate decode tokens/s of that many sequences
decoded together through llama.cpp's batch API (one llama_decode per step
carrying one token of every sequence, as llama.cpp's server does with
parallel slots), each continuing the prompt from a copy of its cache.

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
    llm = Llama(model_path=args.model, n_ctx=max(4096, len(ids) + decode + 16), n_batch=512, n_threads=args.threads,
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
    parallel = [parallel_decode(args.model, ids, decode, n, args.threads, args.runs)
                for n in spec.get("parallel", [])]
    report = {"implementation": f"llama.cpp (llama-cpp-python {__version__})",
              "threads": args.threads, "prompt_tokens": len(ids),
              "prefill_seconds": best_prefill,
              "prefill_tokens_per_second": len(ids) / best_prefill,
              "time_to_first_token_seconds": best_prefill,
              "decode_tokens": decode - 1,
              "decode_tokens_per_second": (decode - 1) / best_decode,
              "parallel": parallel}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['implementation']}: {len(ids)} prompt tokens, {args.threads} threads")
        print(f"prefill {report['prefill_tokens_per_second']:.1f} tokens/s, time to first token "
              f"{best_prefill:.3f} s, decode {report['decode_tokens_per_second']:.1f} tokens/s "
              f"(best of {args.runs})")
        for p in parallel:
            print(f"{p['sequences']} sequences: decode {p['decode_tokens_per_second']:.1f} tokens/s "
                  f"together ({p['per_sequence_tokens_per_second']:.1f} each)")


def parallel_decode(model_path, ids, decode, n, threads, runs):
    """n sequences decoded together for decode - 1 steps, best of runs."""
    import llama_cpp as L

    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    model = L.llama_model_load_from_file(model_path.encode(), mparams)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    cparams = L.llama_context_default_params()
    # One cache shared by the sequences, room for each to hold the prompt
    # and its answer.
    cparams.n_ctx = n * (len(ids) + decode) + 256
    cparams.n_batch = 512
    cparams.n_ubatch = 512
    cparams.n_seq_max = n
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    if hasattr(cparams, "kv_unified"):
        cparams.kv_unified = True
    batch = L.llama_batch_init(max(512, n), 0, n)
    best = float("inf")
    # A fresh context per run: the prompt is read into sequence 0 and
    # copied to the others (untimed), then all decode together (timed).
    for _ in range(max(1, runs)):
        ctx = L.llama_init_from_model(model, cparams)
        memory = L.llama_get_memory(ctx)

        def run(tokens):
            """tokens: (token, position, sequence, wants logits)."""
            batch.n_tokens = len(tokens)
            for i, (tok, pos, seq, logits) in enumerate(tokens):
                batch.token[i] = tok
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = logits
            if L.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")

        def logits_of(i):
            return np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))

        for start in range(0, len(ids), 512):
            chunk = ids[start:start + 512]
            run([(t, start + i, 0, start + i == len(ids) - 1) for i, t in enumerate(chunk)])
        first = int(np.argmax(logits_of(len(ids) - 1 - (len(ids) - 1) // 512 * 512)))
        for s in range(1, n):
            L.llama_memory_seq_cp(memory, 0, s, -1, -1)
        nxt = [first] * n
        t = time.perf_counter()
        for step in range(decode - 1):
            run([(nxt[s], len(ids) + step, s, True) for s in range(n)])
            nxt = [int(np.argmax(logits_of(s))) for s in range(n)]
        best = min(best, time.perf_counter() - t)
        L.llama_free(ctx)
    L.llama_batch_free(batch)
    L.llama_model_free(model)
    total = n * (decode - 1) / best
    return {"sequences": n, "decode_tokens": decode - 1, "decode_seconds": best,
            "decode_tokens_per_second": total, "per_sequence_tokens_per_second": total / n}


if __name__ == "__main__":
    main()
