#!/usr/bin/env python3
"""Build the Debian-tags retrieval set: a BEIR folder for `quarry eval`.

    python3 scripts/make_debtags_set.py PACKAGES TRANSLATION OUT_DIR [N]

An entity-list retrieval set from public data this machine reaches through
apt: the documents are the descriptions of Debian programs (the English
long descriptions of Debian 12 "bookworm" main, Translation-en, with the
package name as title), the queries are the hand-written topics of
eval/debtags/queries.jsonl ("chess playing programs", "back up my files"),
and a program is relevant to a topic when its debtags (the Packages file's
`Tag:` field, assigned by Debian maintainers, not by us) hold every tag the
topic lists. Like DBpedia-entity's list queries, a topic has many relevant
documents, few of which repeat its words.

PACKAGES and TRANSLATION are apt's list files (plain or .lz4, which needs
the lz4 command), fetched with

    apt-get update -o Acquire::Languages=en
    # /var/lib/apt/lists/*_debian_dists_bookworm_main_binary-amd64_Packages.lz4
    # /var/lib/apt/lists/*_debian_dists_bookworm_main_i18n_Translation-en.lz4

Documents: the packages tagged role::program with a long description, the
first N (default 5,000) by SHA-1 of their name, so the sample is the same
for the same lists. Topics with fewer than 3 relevant documents in the
sample are left out (reported). Writes OUT_DIR/corpus.jsonl, queries.jsonl
and qrels/test.tsv (grade 1, with the BEIR header line).
"""
import hashlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOPICS = os.path.join(HERE, "..", "eval", "debtags", "queries.jsonl")


def read_text(path):
    if path.endswith(".lz4"):
        return subprocess.run(
            ["lz4", "-dc", path], check=True, capture_output=True
        ).stdout.decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def stanzas(text):
    """Debian control stanzas as dicts; continuation lines keep their newline."""
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line[1:]
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def description(raw):
    """Synopsis and long description as prose: ' .' lines end paragraphs."""
    lines = raw.split("\n")
    synopsis, body = lines[0].strip(), []
    for line in lines[1:]:
        line = line.strip()
        body.append("\n" if line == "." else line)
    text = " ".join(body).replace(" \n ", "\n").strip()
    return synopsis, text


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    packages, translation, out = sys.argv[1:4]
    limit = int(sys.argv[4]) if len(sys.argv) == 5 else 5000
    tags = {}
    for s in stanzas(read_text(packages)):
        if "Tag" in s:
            tags[s["Package"]] = {
                t.strip() for t in s["Tag"].replace("\n", " ").split(",") if t.strip()
            }
    docs = {}
    for s in stanzas(read_text(translation)):
        name, raw = s.get("Package"), s.get("Description-en", "")
        if name in tags and "role::program" in tags[name] and "\n" in raw:
            synopsis, body = description(raw)
            if body:
                docs[name] = f"{synopsis}.\n{body}"
    names = sorted(docs, key=lambda n: hashlib.sha1(n.encode()).hexdigest())[:limit]
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for name in sorted(names):
            f.write(json.dumps({"_id": name, "title": name, "text": docs[name]}) + "\n")
    kept, judged = 0, 0
    with open(TOPICS, encoding="utf-8") as t, \
            open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as q, \
            open(os.path.join(out, "qrels", "test.tsv"), "w", encoding="utf-8") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for line in t:
            topic = json.loads(line)
            want = set(topic["tags"])
            relevant = sorted(n for n in names if want <= tags[n])
            if len(relevant) < 3:
                print(f"left out {topic['_id']}: {len(relevant)} relevant", file=sys.stderr)
                continue
            kept += 1
            judged += len(relevant)
            q.write(json.dumps({"_id": topic["_id"], "text": topic["text"]}) + "\n")
            for n in relevant:
                r.write(f"{topic['_id']}\t{n}\t1\n")
    print(f"{len(names)} documents, {kept} topics, {judged} judgments -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
