#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a set time with
# cargo-fuzz (libFuzzer, AddressSanitizer) on the nightly toolchain.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 120 seconds each, all targets. Needs `rustup toolchain install
# nightly` and `cargo install cargo-fuzz`; the chunker target needs the
# default embedding model (quarry models fetch). Corpora grow in
# fuzz/corpus/TARGET and are kept between runs; a crash leaves its input in
# fuzz/artifacts/TARGET and this script exits non-zero: add the input as a
# regression test next to the code it broke.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-120}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build -O
mkdir -p artifacts
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${secs}s"
  log="artifacts/$t.log"
  set +e
  # -rss_limit_mb: an input that makes a parser allocate gigabytes is a bug.
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|ERROR|SUMMARY|panicked|Test unit written" "$log" || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs and logs in fuzz/artifacts/)"
  exit 1
fi
echo "no crashes"
