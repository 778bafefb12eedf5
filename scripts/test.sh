#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first
# (scripts/install-test-deps.sh), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --all-features --doc
