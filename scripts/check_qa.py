#!/usr/bin/env python3
"""Check a RAG evaluation QA file against its corpus.

Usage:
    python3 scripts/check_qa.py QA.jsonl CORPUS.jsonl [--top K]

QA.jsonl holds one JSON object per line, either
    answerable:   {"id", "question", "answers": [str, ...], "gold": [corpus _id, ...]}
    unanswerable: {"id", "question", "answers": [], "gold": [], "topic": "on-corpus" | "off-corpus"}
CORPUS.jsonl holds one JSON object per line with "_id" and "text" (and optionally "title").

Errors (exit status 1):
  * a line that is not a JSON object, missing or unexpected fields, wrong types
  * duplicate ids
  * answerable: empty answers or gold, duplicate gold ids, a gold id that is not in the
    corpus, a gold passage that holds none of the accepted answers, or a first answer
    that does not occur (case-insensitive) in the first gold passage
  * unanswerable: non-empty answers or gold, topic other than on-corpus / off-corpus

Warnings (reported, exit status unaffected):
  * answerable: other passages that contain an accepted answer AND share at least half
    of the question's content words (possible missing gold ids)
  * answerable: an accepted answer that occurs in no gold passage (allowed only for the
    same value written differently), an answer longer than five words, an answer that
    occurs in the question itself
  * unanswerable: the K passages sharing the most content words with the question
    (weighted by how rare each word is in the corpus), for manual review
  * an id whose form ("xx-a01" / "xx-u01") does not match the item's kind

Standard library only.
"""

import argparse
import json
import math
import re
import sys
import unicodedata
from collections import defaultdict

ANSWERABLE_FIELDS = {"id", "question", "answers", "gold"}
UNANSWERABLE_FIELDS = {"id", "question", "answers", "gold", "topic"}
TOPICS = {"on-corpus", "off-corpus"}

STOPWORDS = set("""
a about above after again against all also am an and any are aren as at be because been
before being below between both but by can cannot could did do does doing down during each
few for from further had has have having he her here hers herself him himself his how i if
in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up upon
very was we were what when where which while who whom whose why will with would you your
yours yourself yourselves
many much long often usually typically according per one ones get gets got give given
called name named kind use used say says said s t
""".split())

TOKEN_RE = re.compile(r"[a-z0-9]+")


def fold(text):
    """Lower-case and strip accents, for content-word matching only."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.lower()


NO_STEM = {"species", "series", "news", "physics", "mathematics", "economics", "always",
           "perhaps", "various", "famous", "previous", "serious", "virus", "bus", "gas",
           "plus", "thus", "yes", "this", "its", "his", "has", "was", "does", "less"}


def stem(word):
    """A very light suffix stripper, so that 'invented' meets 'invent'."""
    if word in NO_STEM or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) >= 5:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")) and len(word) >= 5:
        return word[:-2]
    if word.endswith("ing") and len(word) >= 6:
        return word[:-3]
    if word.endswith("ed") and len(word) >= 6:
        return word[:-2]
    if word.endswith("s") and len(word) >= 4:
        return word[:-1]
    return word


def content_words(text):
    return {stem(w) for w in TOKEN_RE.findall(fold(text))
            if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def load_corpus(path):
    corpus = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{lineno}: not JSON: {exc}")
            title = doc.get("title") or ""
            text = doc.get("text") or ""
            corpus[str(doc["_id"])] = (title + " " + text).strip() if title else text
    return corpus


def is_str_list(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("qa")
    ap.add_argument("corpus")
    ap.add_argument("--top", type=int, default=3,
                    help="passages to list for each unanswerable item (default 3)")
    args = ap.parse_args()

    corpus = load_corpus(args.corpus)
    lowered = {pid: text.lower() for pid, text in corpus.items()}
    words = {pid: content_words(text) for pid, text in corpus.items()}
    index = defaultdict(set)
    for pid, ws in words.items():
        for w in ws:
            index[w].add(pid)

    errors, warnings = [], []
    counts = defaultdict(int)
    seen_ids = {}

    def err(where, msg):
        errors.append(f"ERROR {where}: {msg}")

    warn_kinds = defaultdict(int)

    def warn(where, msg, kind):
        warnings.append(f"WARN  {where}: {msg}")
        warn_kinds[kind] += 1

    with open(args.qa, encoding="utf-8") as fh:
        lines = fh.readlines()

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            err(where, f"not JSON: {exc}")
            continue
        if not isinstance(item, dict):
            err(where, "not a JSON object")
            continue

        qid = item.get("id")
        if isinstance(qid, str) and qid:
            where = f"line {lineno} ({qid})"
            if qid in seen_ids:
                err(where, f"duplicate id (first on line {seen_ids[qid]})")
            else:
                seen_ids[qid] = lineno
        else:
            err(where, "missing or empty string field 'id'")

        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            err(where, "missing or empty string field 'question'")
            question = ""
        answers = item.get("answers")
        gold = item.get("gold")
        if not is_str_list(answers):
            err(where, "'answers' must be a list of strings")
            continue
        if not is_str_list(gold):
            err(where, "'gold' must be a list of strings")
            continue

        # An item with a "topic" field, or with neither answers nor gold, is meant to be
        # unanswerable; anything else is checked as answerable.
        answerable = "topic" not in item and bool(answers or gold)
        keys = set(item)
        expected = ANSWERABLE_FIELDS if answerable else UNANSWERABLE_FIELDS
        for missing in sorted(expected - keys):
            err(where, f"missing field '{missing}'")
        for extra in sorted(keys - expected):
            err(where, f"unexpected field '{extra}'")

        if isinstance(qid, str):
            m = re.fullmatch(r"[a-z]+-([au])\d+", qid)
            if not m:
                warn(where, "id is not of the form '<prefix>-a01' / '<prefix>-u01'", "id form")
            elif (m.group(1) == "a") != answerable:
                warn(where, f"id says {'answerable' if m.group(1) == 'a' else 'unanswerable'}"
                            f" but the item is {'answerable' if answerable else 'unanswerable'}", "id form")

        qwords = content_words(question)

        if answerable:
            counts["answerable"] += 1
            if not answers:
                err(where, "answerable item has no answers")
            if not gold:
                err(where, "answerable item has no gold ids")
            if any(not a.strip() for a in answers):
                err(where, "empty answer string")
            if len(set(gold)) != len(gold):
                err(where, "duplicate gold ids")
            if not answers or not gold:
                continue
            alow = [a.lower() for a in answers if a.strip()]
            for pid in gold:
                if pid not in corpus:
                    err(where, f"gold id {pid} is not in the corpus")
                elif not any(a in lowered[pid] for a in alow):
                    err(where, f"gold passage {pid} holds none of the accepted answers")
            if gold[0] in corpus and answers[0].lower() not in lowered[gold[0]]:
                err(where, f"first answer {answers[0]!r} does not occur in first gold "
                           f"passage {gold[0]}")
            for a in answers:
                if not any(a.lower() in lowered.get(pid, "") for pid in gold):
                    warn(where, f"answer {a!r} occurs in no gold passage "
                                f"(fine only if it is the same value written differently)",
                         "variant not in gold")
                if len(a.split()) > 5:
                    warn(where, f"answer {a!r} is longer than five words", "long answer")
                if a.lower() in question.lower():
                    warn(where, f"answer {a!r} occurs in the question", "answer in question")
            # Possible missing gold: holds an answer and shares >= half the content words.
            if qwords:
                need = (len(qwords) + 1) // 2
                goldset = set(gold)
                for pid, text in lowered.items():
                    if pid in goldset or not any(a in text for a in alow):
                        continue
                    shared = qwords & words[pid]
                    if len(shared) >= need:
                        snippet = next(a for a in alow if a in text)
                        k = text.find(snippet)
                        ctx = corpus[pid][max(0, k - 80): k + 80].replace("\n", " ")
                        warn(where, f"possible missing gold {pid} (shares "
                                    f"{len(shared)}/{len(qwords)} content words): ...{ctx}...",
                             "possible missing gold")
        else:
            counts["unanswerable"] += 1
            topic = item.get("topic")
            if "topic" not in item:
                pass  # already reported as a missing field
            elif topic not in TOPICS:
                err(where, f"topic must be one of {sorted(TOPICS)}, got {topic!r}")
            else:
                counts[topic] += 1
            if answers:
                err(where, "unanswerable item has answers")
            if gold:
                err(where, "unanswerable item has gold ids")
            if qwords and args.top > 0:
                # Rank passages by the summed rarity (idf) of the question words they
                # share, so that a passage sharing a rare entity name outranks one that
                # only shares a common word such as "year".
                overlap = defaultdict(float)
                for w in qwords:
                    postings = index.get(w, ())
                    if postings:
                        idf = math.log(len(corpus) / len(postings))
                        for pid in postings:
                            overlap[pid] += idf
                best = sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0]))[: args.top]
                for pid, _score in best:
                    n = len(qwords & words[pid])
                    ctx = corpus[pid][:140].replace("\n", " ")
                    warn(where, f"review {pid} (shares {n}/{len(qwords)} content words "
                                f"{sorted(qwords & words[pid])}): {ctx}...", "unanswerable review")

    for line in errors + warnings:
        print(line)
    print()
    print(f"Summary for {args.qa}:")
    print(f"  items:        {counts['answerable'] + counts['unanswerable']}")
    print(f"  answerable:   {counts['answerable']}")
    print(f"  unanswerable: {counts['unanswerable']} "
          f"(on-corpus {counts['on-corpus']}, off-corpus {counts['off-corpus']})")
    print(f"  errors:       {len(errors)}")
    print(f"  warnings:     {len(warnings)}")
    for kind in sorted(warn_kinds):
        print(f"    {kind}: {warn_kinds[kind]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
