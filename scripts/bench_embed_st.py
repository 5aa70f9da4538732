#!/usr/bin/env python3
"""sentence-transformers' side of `quarry bench embed`: the same model folder,
the same corpus and queries, PyTorch on 2 threads, batch size 32.

    venv/bin/python scripts/bench_embed_st.py MODEL_DIR CORPUS.jsonl QUERIES.jsonl [QUARRY.json]

Prints a JSON line; given Quarry's `quarry bench embed --json` output, it
also prints the ratios (above 1 means Quarry is faster).
"""
import json
import math
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def texts(path):
    with open(path) as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def percentile(sorted_values, p):
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def main():
    model_dir, corpus_path, queries_path = sys.argv[1:4]
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    corpus = texts(corpus_path)
    queries = texts(queries_path)
    tokens = sum(
        min(len(ids), model.max_seq_length)
        for ids in model.tokenizer(corpus, truncation=False)["input_ids"]
    )
    model.encode(corpus[:64], batch_size=32)  # warm-up
    start = time.perf_counter()
    model.encode(corpus, batch_size=32)
    secs = time.perf_counter() - start
    latencies = []
    for i in range(200):
        q = queries[i % len(queries)]
        t = time.perf_counter()
        model.encode([q], batch_size=1)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    report = {
        "implementation": "sentence-transformers",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "passages": len(corpus),
        "tokens": tokens,
        "corpus_seconds": secs,
        "passages_per_second": len(corpus) / secs,
        "tokens_per_second": tokens / secs,
        "query_p50_ms": percentile(latencies, 50),
        "query_p99_ms": percentile(latencies, 99),
    }
    print(json.dumps(report))
    if len(sys.argv) > 4:
        with open(sys.argv[4]) as f:
            quarry = json.loads(f.read().strip().splitlines()[-1])
        print(
            "quarry / sentence-transformers: throughput x{:.2f}, p50 latency x{:.2f} faster, p99 x{:.2f} faster".format(
                quarry["passages_per_second"] / report["passages_per_second"],
                report["query_p50_ms"] / quarry["query_p50_ms"],
                report["query_p99_ms"] / quarry["query_p99_ms"],
            )
        )


if __name__ == "__main__":
    main()
