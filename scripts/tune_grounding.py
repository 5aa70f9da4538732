#!/usr/bin/env python3
"""Tune evidence weights and the answer threshold from a server's evidence log.

Run a server with the evidence candidates logged as JSON, ask the QA sets in
extractive mode, then fit:

    RUST_LOG=warn,quarry=info,quarry::evidence=debug quarry serve --log-format json ... 2> server.log
    quarry eval ask eval/qa/msmarco-5k-dev.jsonl -c msmarco --answer-mode extractive
    python3 scripts/tune_grounding.py server.log eval/qa/msmarco-5k-dev.jsonl [--check OTHER_QA.jsonl ...]

For every question the log holds each candidate sentence's signals (see
FEATURES) and passage number; a candidate is right when it contains an
accepted answer (normalised as `quarry eval ask` does). The script fits a
logistic model (class-balanced, L2) of "this sentence holds the answer" on the
tuning set(s) (comma-separated), then picks the threshold on the best
sentence's score that refuses the most unanswerable questions while refusing
at most --max-false-refusals of the answerable ones, and prints the figures
for the tuning sets and for every --check set (held out: never fitted on).
"""
import argparse
import json
import math
import re
import sys


def normalise(text):
    text = re.sub(r"(?<=\d),(?=\d)", "", text.lower())
    text = text.replace("%", " percent ")
    return " " + " ".join(re.sub(r"[^\w]|_", " ", text).split()) + " "


def contains(text, answers):
    t = normalise(text)
    return any(normalise(a).strip() and normalise(a) in t for a in answers)


def read_log(path):
    by_question = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"evidence candidate"' not in line:
                continue
            try:
                v = json.loads(line)["fields"]
            except (ValueError, KeyError):
                continue
            q = v["question"]
            key = (v["passage"], v["sentence"])
            cands = by_question.setdefault(q, {})
            # Only the best few were aligned (their alignment is real).
            if v.get("position", 0) < ALIGNED:
                cands[key] = v
    return {q: list(c.values()) for q, c in by_question.items()}


def read_qa(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# The sentences the server re-scores with their alignment (evidence.rs ALIGNED).
ALIGNED = 4

FEATURES = ["cosine", "lexical", "missing", "answer_type", "coverage", "passage_cosine", "rank",
            "alignment"]


def features(c):
    return [c[f] for f in FEATURES]


def score(c, w):
    z = w[0] + sum(wi * x for wi, x in zip(w[1:], features(c)))
    return 1.0 / (1.0 + math.exp(-z))


def fit(items, log, l2=0.01, epochs=3000, lr=0.5):
    """Logistic regression, batch gradient descent: a candidate is positive
    when it holds an accepted answer; every candidate of an unanswerable
    question is negative."""
    xs, ys = [], []
    for it in items:
        for c in log.get(it["question"], []):
            xs.append([1.0] + features(c))
            ys.append(1.0 if it["answers"] and contains(c["sentence"], it["answers"]) else 0.0)
    n, d = len(xs), len(xs[0])
    # Positives are rare: weight them so both classes count equally.
    pos = max(sum(ys), 1.0)
    cw = [(n - pos) / pos if y else 1.0 for y in ys]
    w = [0.0] * d
    for _ in range(epochs):
        grad = [0.0] * d
        for x, y, k in zip(xs, ys, cw):
            z = sum(wi * xi for wi, xi in zip(w, x))
            p = 1.0 / (1.0 + math.exp(-max(min(z, 30), -30)))
            for j in range(d):
                grad[j] += k * (p - y) * x[j]
        total = sum(cw)
        for j in range(d):
            reg = l2 * w[j] if j else 0.0
            w[j] -= lr * (grad[j] / total + reg)
    return w


def objective(items, log, w, max_false):
    _, _, best_ans, best_una = evaluate(items, log, w)
    t = best_threshold(best_ans, best_una, max_false)
    kept, _, false_ref, refused, _ = evaluate(items, log, w, t)
    return kept + refused, t


def search(items, log, w, max_false, rounds=6, seed=7):
    """Coordinate search from w on the combined objective: answers right
    and kept, plus unanswerable questions refused."""
    import random
    rng = random.Random(seed)
    best, _ = objective(items, log, w, max_false)
    w = list(w)
    for _ in range(rounds):
        for j in range(1, len(w)):
            for step in (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0):
                trial = list(w)
                trial[j] += step * (1 + rng.random() * 0.1)
                got, _ = objective(items, log, trial, max_false)
                if got > best:
                    best, w = got, trial
    return w


def evaluate(items, log, w, threshold=None):
    right = 0
    answerable = 0
    best_ans, best_una = [], []
    for it in items:
        cands = log.get(it["question"])
        if not cands:
            continue
        ranked = sorted(cands, key=lambda c: -score(c, w))
        top = ranked[0]
        if it["answers"]:
            answerable += 1
            ok = contains(top["sentence"], it["answers"])
            best_ans.append((score(top, w), ok))
            right += ok
        else:
            best_una.append(score(top, w))
    if threshold is None:
        return right, answerable, best_ans, best_una
    kept = sum(1 for s, ok in best_ans if s >= threshold and ok)
    false_ref = sum(1 for s, _ in best_ans if s < threshold)
    refused = sum(1 for s in best_una if s < threshold)
    return kept, answerable, false_ref, refused, len(best_una)


def best_threshold(best_ans, best_una, max_false=0.10):
    """The threshold refusing the most unanswerable questions while falsely
    refusing at most max_false of the answerable ones."""
    cands = sorted({s for s, _ in best_ans} | set(best_una))
    best = (-1, 0.0)
    n = max(len(best_ans), 1)
    for t in cands:
        false_ref = sum(1 for s, _ in best_ans if s < t) / n
        if false_ref > max_false:
            continue
        refused = sum(1 for s in best_una if s < t)
        if refused > best[0]:
            best = (refused, t)
    return best[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("qa")
    ap.add_argument("--check", nargs="*", default=[])
    ap.add_argument("--max-false-refusals", type=float, default=0.08)
    ap.add_argument("--l2", type=float, default=0.01)
    ap.add_argument("--search", action="store_true",
                    help="then improve the fitted weights by coordinate search on the figures themselves")
    args = ap.parse_args()
    log = read_log(args.log)
    tune = []
    for path in args.qa.split(","):
        tune += read_qa(path)
    w = fit(tune, log, l2=args.l2)
    if args.search:
        w = search(tune, log, w, args.max_false_refusals)
    print("weights (bias, " + ", ".join(FEATURES) + "):")
    print("  " + ", ".join(f"{x:.3f}" for x in w))
    _, _, best_ans, best_una = evaluate(tune, log, w)
    t = best_threshold(best_ans, best_una, args.max_false_refusals)
    for path in args.qa.split(",") + args.check:
        items = read_qa(path)
        right, n, _, _ = evaluate(items, log, w)
        kept, n, false_ref, refused, n_una = evaluate(items, log, w, t)
        print(f"{path}: best sentence right {right}/{n}; threshold {t:.3f}: "
              f"kept right {kept}/{n}, false refusals {false_ref}/{n}, unanswerable refused {refused}/{n_una} "
              f"(with candidates; the others had no relevant passage)")


if __name__ == "__main__":
    sys.exit(main())
