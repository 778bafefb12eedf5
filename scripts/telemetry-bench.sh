#!/usr/bin/env bash
# Runs rollgate-telemetry's side-by-side benches (vs metrics-exporter-prometheus,
# prometheus, tracing-subscriber) in one run and prints "benchmark median" lines,
# the numbers BENCHMARKS.md reports. Extra arguments are criterion filters,
# e.g. `bash scripts/telemetry-bench.sh log_event`. Takes about 2 minutes in full
# on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo bench -p rollgate-telemetry --bench telemetry -- "$@" 2>&1 | tee "$log" >&2
echo "== summary (median of criterion's estimate)"
# criterion prints the id, then "time: [low median high]" on the same or the next line.
awk '
  /^memory after/ { print; next }
  /time:/ {
    line = $0
    if (line !~ /^[a-z]/) line = prev " " line
    sub(/ +time:/, "", line)
    gsub(/[\[\]]/, "", line)
    n = split(line, f, " +")
    print f[1], f[4], f[5]
  }
  { prev = $0 }
' "$log"
