#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ briefly (CI smoke fuzzing, stable
# toolchain, no sanitizer). Installs cargo-fuzz when missing.
#
#   bash scripts/fuzz.sh            # FUZZ_SECONDS per target (default 10)
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh load_yaml   # one target, longer
#
# The total stays under 3 minutes with the default: build once, then
# 10 s per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
# libfuzzer-sys builds libFuzzer from C++ sources.
if ! command -v c++ >/dev/null 2>&1; then
  apt-get update
  apt-get install -y --no-install-recommends g++
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer none
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  echo "== fuzz $t (${seconds}s)"
  if ! cargo fuzz run "$t" --sanitizer none -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t failed; reproduce with: cd fuzz && cargo fuzz run $t --sanitizer none artifacts/$t/<crash file>" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" || true
done
