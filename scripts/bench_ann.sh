#!/usr/bin/env bash
# quarry bench ann beside hnswlib, on the same data in the same run.
#
#   scripts/bench_ann.sh fashion-mnist   # Debian's dataset-fashion-mnist
#   scripts/bench_ann.sh msmarco         # ../shared/data/msmarco-5k, MiniLM vectors
#
# Builds the release binary, fetches what is missing (the Debian package with
# apt-get download, hnswlib and numpy from PyPI into a venv under
# $HOME/.cache/quarry), runs Quarry's benchmark with --export, then hnswlib on
# the exported vectors, and prints both tables. Extra arguments go to
# `quarry bench ann` (e.g. --queries 10000 --ef 40,80,160).
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:?usage: scripts/bench_ann.sh fashion-mnist|msmarco [quarry bench ann flags]}"
shift
cache="$HOME/.cache/quarry"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cargo build --release --workspace --quiet

case "$which" in
  fashion-mnist)
    data="$cache/datasets/fashion-mnist"
    if [ ! -d "$data/usr/share/datasets/fashion-mnist" ]; then
      mkdir -p "$data" && (cd "$data" && apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb .)
    fi
    dataset="fashion-mnist:$data" ;;
  msmarco)
    dataset="beir:../shared/data/msmarco-5k" ;;
  *) echo "unknown data set $which" >&2; exit 2 ;;
esac

venv="$cache/annvenv"
if ! "$venv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet hnswlib numpy
fi

export_dir="$(mktemp -d)"
trap 'rm -rf "$export_dir"' EXIT
"$CARGO_TARGET_DIR/release/quarry" bench ann --dataset "$dataset" --export "$export_dir" "$@"
echo
"$venv/bin/python" scripts/ann_hnswlib.py "$export_dir"
