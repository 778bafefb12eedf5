#!/usr/bin/env bash
# Runs one example of every library crate, as a user would
# (`cargo run -p CRATE --example NAME`); each asserts what it shows.
# rollgate-telemetry's axum example runs in scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
run() {
  echo "== example $1 $2"
  cargo run -q -p "$1" --example "$2" -- "${@:3}"
}
run rollgate-deploy canary_rollout
run rollgate-canary judge
run rollgate-drift diff
run rollgate plan
run rollgate-telemetry assets "$out"
test -s "$out/rollgate-dashboard.json"
test -s "$out/rollgate-alerts.yml"
