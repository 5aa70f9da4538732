#!/usr/bin/env python3
"""Does scoring passages by their best sentence help hybrid retrieval?

    quarry eval DIR --lists LISTS.jsonl            # the two rankings per query
    quarry serve --no-auth --listen 127.0.0.1:PORT  # any server, for embeddings
    python3 scripts/sentence_study.py DIR LISTS.jsonl http://127.0.0.1:PORT [QUARRY]

For each judged query of the BEIR folder DIR: fuse the keyword and dense
lists as the default does on English text (convex, alpha 0.7, min-max
normalised), then rescore the top 20 as
`(1 - lambda) * fused + lambda * best` where `best` is the highest cosine
between the query and one sentence of the passage (its first 12 sentences
of three words or more, min-max normalised over the 20), embedded by the
server's model through `quarry embed`. Prints mean nDCG@10 per lambda
(lambda 0 is the default ranking). QUARRY is the binary (default `quarry`).
The figures are in docs/retrieval.md.
"""
import collections
import json
import math
import re
import statistics
import subprocess
import sys

DEPTH, SENTENCES, ALPHA = 20, 12, 0.7
LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def qrels(path):
    judged = collections.defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) == 3 and cols[2].lstrip("-").isdigit():
                judged[cols[0]][cols[1]] = int(cols[2])
    return judged


def ndcg(ranking, judged, k=10):
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def minmax(pairs):
    if not pairs:
        return {}
    lo, hi = min(s for _, s in pairs), max(s for _, s in pairs)
    return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in pairs}


def sentences(text):
    parts = re.split(r'(?<=[.!?])\s+(?=[A-Z0-9"])', text)
    return [p for p in parts if len(p.split()) >= 3][:SENTENCES] or [text]


class Embedder:
    def __init__(self, binary, addr):
        self.binary, self.addr, self.cache = binary, addr, {}

    def __call__(self, texts):
        need = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(need), 128):
            batch = need[i:i + 128]
            out = subprocess.run(
                [self.binary, "embed", "--addr", self.addr, "--json", "--", *batch],
                check=True, capture_output=True, text=True,
            )
            for text, vector in zip(batch, json.loads(out.stdout)["embeddings"]):
                self.cache[text] = vector
        return [self.cache[t] for t in texts]


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    folder, lists_path, addr = sys.argv[1:4]
    embed = Embedder(sys.argv[4] if len(sys.argv) == 5 else "quarry", addr)
    corpus = {
        d["_id"]: (d.get("title", "") + ". " + d["text"]).lstrip(". ")
        for d in read_jsonl(f"{folder}/corpus.jsonl")
    }
    questions = {q["_id"]: q["text"] for q in read_jsonl(f"{folder}/queries.jsonl")}
    judged = qrels(f"{folder}/qrels/test.tsv")
    lists = collections.defaultdict(dict)
    for row in read_jsonl(lists_path):
        lists[row["qid"]][row["mode"]] = [(d, s) for d, s in row["ranking"]]
    scores = collections.defaultdict(list)
    for qid, modes in sorted(lists.items()):
        if not any(g > 0 for g in judged.get(qid, {}).values()):
            continue
        nd, nk = minmax(modes.get("dense", [])), minmax(modes.get("keyword", []))
        fused_score = {d: ALPHA * nd.get(d, 0) + (1 - ALPHA) * nk.get(d, 0) for d in set(nd) | set(nk)}
        fused = sorted(fused_score, key=lambda d: (-fused_score[d], d))
        top = fused[:DEPTH]
        query = embed([questions[qid]])[0]
        best = {}
        for d in top:
            vectors = embed(sentences(corpus[d]))
            best[d] = max(sum(a * b for a, b in zip(query, v)) for v in vectors)
        lo, hi = min(best.values()), max(best.values())
        for lam in LAMBDAS:
            rescored = {
                d: (1 - lam) * fused_score[d] + lam * ((best[d] - lo) / (hi - lo) if hi > lo else 1.0)
                for d in top
            }
            ranking = sorted(top, key=lambda d: (-rescored[d], d)) + fused[DEPTH:]
            scores[lam].append(ndcg(ranking, judged[qid]))
    print(f"{folder}: {len(scores[0.0])} queries; nDCG@10 " + ", ".join(
        f"lambda {lam}: {statistics.mean(v):.4f}" for lam, v in scores.items()))


if __name__ == "__main__":
    main()
