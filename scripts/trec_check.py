#!/usr/bin/env python3
"""Cross-checks `quarry eval` with pytrec_eval (trec_eval's own code).

    pip install pytrec-eval-terrier
    quarry eval DIR --run-dir runs --json > quarry.json
    python3 scripts/trec_check.py DIR/qrels/test.tsv runs quarry.json

For each mode's run file it computes nDCG@10 (ndcg_cut_10), Recall@100
(recall_100) and MRR@10 (recip_rank on the run cut to its top 10), averages
over the queries that have relevant judgments, and prints them beside
Quarry's figures with the largest difference. Exits 1 if any differs by
more than 0.001.
"""
import json
import sys
from pathlib import Path

import pytrec_eval


def read_qrels(path):
    qrels = {}
    for n, line in enumerate(open(path)):
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 3:
            continue
        try:
            grade = int(cols[2])
        except ValueError:
            if n == 0:
                continue  # BEIR header
            raise
        qrels.setdefault(cols[0], {})[cols[1]] = grade
    return qrels


def read_run(path, cut=None):
    run = {}
    for line in open(path):
        qid, _, doc, rank, score, _ = line.split()
        if cut is None or int(rank) <= cut:
            run.setdefault(qid, {})[doc] = float(score)
    return run


def main():
    qrels_path, run_dir, quarry_json = sys.argv[1:4]
    qrels = read_qrels(qrels_path)
    judged = {q for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    quarry = json.loads(Path(quarry_json).read_text().strip().splitlines()[-1])["results"]
    worst = 0.0
    print(f"{'mode':<8} {'metric':<11} {'pytrec_eval':>11} {'quarry':>8}")
    for mode in sorted(quarry):
        run_path = Path(run_dir) / f"{mode}.run"
        full = read_run(run_path)
        top10 = read_run(run_path, cut=10)
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"})
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
        res, res_rr = ev.evaluate(full), rr.evaluate(top10)

        def mean(results, measure):
            # Queries with judgments but an empty run score 0, as in trec_eval -c.
            return sum(results.get(q, {}).get(measure, 0.0) for q in judged) / len(judged)

        ours = {
            "ndcg@10": mean(res, "ndcg_cut_10"),
            "recall@100": mean(res, "recall_100"),
            "mrr@10": mean(res_rr, "recip_rank"),
        }
        for metric, value in ours.items():
            diff = abs(value - quarry[mode][metric])
            worst = max(worst, diff)
            print(f"{mode:<8} {metric:<11} {value:>11.4f} {quarry[mode][metric]:>8.4f}")
    print(f"largest difference: {worst:.6f} over {len(judged)} judged queries")
    sys.exit(0 if worst <= 0.001 else 1)


if __name__ == "__main__":
    main()
