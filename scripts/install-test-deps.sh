#!/usr/bin/env bash
# Installs the tools the test suite needs (apt packages, pip packages), only
# when they are missing. Safe to run again.
set -euo pipefail

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
