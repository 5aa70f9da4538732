#!/usr/bin/env bash
# Runs `quarry bench embed` and sentence-transformers on the same corpus in
# one go and prints both, then the ratios.
#   scripts/bench_embed.sh [DATA_DIR] [PYTHON_WITH_SENTENCE_TRANSFORMERS]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/msmarco-5k}"
python="${2:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}"
cargo build --release -q
quarry="$CARGO_TARGET_DIR/release/quarry"
model_dir=$("$quarry" models fetch | sed -n 's/.*: ready at //p')
out=$(mktemp)
"$quarry" bench embed --corpus "$data/corpus.jsonl" --queries "$data/queries.jsonl" --json | tee "$out"
"$python" scripts/bench_embed_st.py "$model_dir" "$data/corpus.jsonl" "$data/queries.jsonl" "$out"
rm -f "$out"
