#!/usr/bin/env bash
# Builds and runs rollgate-telemetry's axum example for a few requests: it
# serves on a free loopback port, sends N orders (default 20) plus health
# checks and scrapes, checks its own /metrics (N requests on the order
# route, every 10th an error, nothing for /metrics and /healthz) and exits
# non-zero otherwise. Run by scripts/test.sh (so by CI).
set -euo pipefail
cd "$(dirname "$0")/.."
RUST_LOG="${RUST_LOG:-warn}" cargo run --quiet -p rollgate-telemetry --all-features --example axum_service -- self-test "${1:-20}"
