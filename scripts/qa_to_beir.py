#!/usr/bin/env python3
"""Turn a QA set and its corpus into a BEIR folder for `quarry eval`.

    python3 scripts/qa_to_beir.py QA.jsonl CORPUS.jsonl OUT_DIR

The answerable questions become queries.jsonl; each gold passage is judged
relevant (grade 1) in qrels/test.tsv (with the BEIR header line); the
corpus is linked (or copied when links fail) as corpus.jsonl. Unanswerable
questions are left out: they have no relevant passage to rank.
"""
import json
import os
import shutil
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    qa, corpus, out = sys.argv[1:]
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    target = os.path.join(out, "corpus.jsonl")
    if os.path.lexists(target):
        os.remove(target)
    try:
        os.symlink(os.path.abspath(corpus), target)
    except OSError:
        shutil.copyfile(corpus, target)
    n = 0
    with open(qa, encoding="utf-8") as f, \
            open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as q, \
            open(os.path.join(out, "qrels", "test.tsv"), "w", encoding="utf-8") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for line in f:
            if not line.strip():
                continue
            item = json.loads(line)
            if not item.get("answers"):
                continue
            q.write(json.dumps({"_id": item["id"], "text": item["question"]}) + "\n")
            for doc in item["gold"]:
                r.write(f"{item['id']}\t{doc}\t1\n")
            n += 1
    print(f"{out}: {n} queries")


if __name__ == "__main__":
    main()
