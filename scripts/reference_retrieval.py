#!/usr/bin/env python3
"""The Python reference pipeline for `quarry eval`: bm25s (BM25, English
stop words, Snowball stemming) + sentence-transformers (the same MiniLM
folder Quarry uses) + fusion, scored with pytrec_eval (trec_eval's code).

    venv/bin/pip install bm25s PyStemmer sentence-transformers pytrec-eval-terrier
    venv/bin/python scripts/reference_retrieval.py BEIR_DIR MODEL_DIR [QUARRY.json]

Prints nDCG@10, Recall@100 and MRR@10 for keyword, dense, RRF (k=60) and
convex (alpha 0.7, min-max) fusion of the top 100 of each; given the output
of `quarry eval BEIR_DIR --json`, also prints Quarry's figures beside them.
"""
import json
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytrec_eval
import Stemmer
import torch
from sentence_transformers import SentenceTransformer

DEPTH = 100


def jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def read_qrels(path):
    qrels = {}
    for n, line in enumerate(open(path)):
        cols = line.rstrip("\n").split("\t")
        try:
            grade = int(cols[2])
        except (ValueError, IndexError):
            if n == 0:
                continue
            raise
        qrels.setdefault(cols[0], {})[cols[1]] = grade
    return qrels


def minmax(scores):
    lo, hi = min(scores.values()), max(scores.values())
    return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in scores.items()}


def evaluate(qrels, judged, run):
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"})
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    # Score by rank so trec_eval keeps this ranking (it breaks ties by doc id).
    ranked = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()}
    top10 = {q: {d: s for d, s in r.items() if s > len(r) - 10} for q, r in ranked.items()}
    a, b = ev.evaluate(ranked), rr.evaluate(top10)
    mean = lambda res, m: sum(res.get(q, {}).get(m, 0.0) for q in judged) / len(judged)
    return mean(a, "ndcg_cut_10"), mean(a, "recall_100"), mean(b, "recip_rank")


def main():
    beir, model_dir = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(2)
    corpus = jsonl(beir / "corpus.jsonl")
    queries = jsonl(beir / "queries.jsonl")
    qrels = read_qrels(beir / "qrels/test.tsv")
    judged = [q for q in queries if any(g > 0 for g in qrels.get(q["_id"], {}).values())]
    ids = [d["_id"] for d in corpus]
    texts = [(d.get("title") or "") + ("\n" if d.get("title") else "") + d["text"] for d in corpus]

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    q_tokens = bm25s.tokenize([q["text"] for q in judged], stopwords="en", stemmer=stemmer, show_progress=False)
    docs_idx, scores = retriever.retrieve(q_tokens, k=DEPTH, show_progress=False)
    keyword = {q["_id"]: {ids[i]: float(s) for i, s in zip(docs_idx[n], scores[n])} for n, q in enumerate(judged)}

    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    qemb = model.encode([q["text"] for q in judged], normalize_embeddings=True, convert_to_numpy=True)
    sims = qemb @ emb.T
    dense = {}
    for n, q in enumerate(judged):
        top = np.argsort(-sims[n])[:DEPTH]
        dense[q["_id"]] = {ids[i]: float(sims[n][i]) for i in top}

    def order(scores):
        return [d for d, _ in sorted(scores.items(), key=lambda x: -x[1])]

    runs = {"keyword": {}, "dense": {}, "rrf-60": {}, "convex-0.7": {}}
    for q in judged:
        qid = q["_id"]
        k_list, d_list = order(keyword[qid]), order(dense[qid])
        runs["keyword"][qid] = k_list
        runs["dense"][qid] = d_list
        rrf = {}
        for lst in (k_list, d_list):
            for r, d in enumerate(lst):
                rrf[d] = rrf.get(d, 0.0) + 1.0 / (60 + r + 1)
        runs["rrf-60"][qid] = order(rrf)
        nk, nd = minmax(keyword[qid]), minmax(dense[qid])
        convex = {d: 0.7 * nd.get(d, 0.0) + 0.3 * nk.get(d, 0.0) for d in set(nk) | set(nd)}
        runs["convex-0.7"][qid] = order(convex)

    judged_ids = [q["_id"] for q in judged]
    print(f"{len(judged_ids)} judged queries; Python reference (bm25s {bm25s.__version__})")
    print(f"{'run':<12} {'nDCG@10':>8} {'Recall@100':>11} {'MRR@10':>8}")
    for name, run in runs.items():
        nd, rc, mrr = evaluate(qrels, judged_ids, run)
        print(f"{name:<12} {nd:>8.4f} {rc:>11.4f} {mrr:>8.4f}")
    if len(sys.argv) > 3:
        quarry = json.loads(Path(sys.argv[3]).read_text().strip().splitlines()[-1])["results"]
        print("Quarry (same data):")
        for name, r in sorted(quarry.items()):
            print(f"{name:<12} {r['ndcg@10']:>8.4f} {r['recall@100']:>11.4f} {r['mrr@10']:>8.4f}")


if __name__ == "__main__":
    main()
