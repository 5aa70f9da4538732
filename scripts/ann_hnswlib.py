#!/usr/bin/env python3
"""hnswlib on the exact data `quarry bench ann --export DIR` wrote.

Reads DIR/base.fvecs, queries.fvecs, truth.ivecs and params.json (metric, M,
ef_construction, ef values, passes), builds an hnswlib index with the same M
and ef_construction on every core (as hnsw_rs's parallel insertion does), and
measures recall@10 and single-thread queries/s at each ef (knn_query over
all queries with num_threads=1: the loop runs in C++, as Quarry's runs in
Rust). Prints a table, or JSON with --json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import hnswlib


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    rows = raw.reshape(-1, dim + 1)
    assert (rows[:, 0] == dim).all(), f"{path}: ragged rows"
    return rows[:, 1:].view(dtype).copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    params = json.load(open(os.path.join(args.dir, "params.json")))
    base = read_vecs(os.path.join(args.dir, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(args.dir, "queries.fvecs"), np.float32)
    truth = read_vecs(os.path.join(args.dir, "truth.ivecs"), np.int32)
    k = params["k"]
    space = {"l2": "l2", "cosine": "ip"}[params["metric"]]

    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=len(base), M=params["m"],
                     ef_construction=params["ef_construction"], random_seed=100)
    threads = os.cpu_count()
    started = time.perf_counter()
    index.add_items(base, np.arange(len(base)), num_threads=threads)
    build = time.perf_counter() - started

    runs = []
    for ef in params["ef"]:
        index.set_ef(max(ef, k))
        best = float("inf")
        for _ in range(max(1, params["passes"])):
            t = time.perf_counter()
            labels, _ = index.knn_query(queries, k=k, num_threads=1)
            best = min(best, time.perf_counter() - t)
        found = sum(len(set(l) & set(t)) for l, t in zip(labels, truth))
        runs.append({"ef": ef, "recall": found / (len(queries) * k),
                     "qps": len(queries) / best})
    report = {"library": f"hnswlib {getattr(hnswlib, '__version__', '0.8.0')}",
              "metric": params["metric"], "base": len(base),
              "queries": len(queries), "m": params["m"],
              "ef_construction": params["ef_construction"],
              "build_seconds": build, "build_threads": threads, "runs": runs}
    if args.json:
        print(json.dumps(report))
        return
    print(f"hnswlib: M={params['m']} ef_construction={params['ef_construction']}, "
          f"built in {build:.1f} s on {threads} threads")
    print(f"{'ef':>6} {'recall@10':>10} {'queries/s':>12}")
    for r in runs:
        print(f"{r['ef']:>6} {r['recall']:>10.4f} {r['qps']:>12.0f}")


if __name__ == "__main__":
    sys.exit(main())
