#!/usr/bin/env bash
# Installs the tools the test suite needs (apt packages, pip packages), only
# when they are missing. Safe to run again.
set -euo pipefail

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Prometheus server and promtool (rollgate-telemetry, rollgate-canary tests).
if ! command -v promtool >/dev/null 2>&1 || [ ! -x /usr/bin/prometheus ]; then
  apt-get update
  apt-get install -y --no-install-recommends prometheus
fi

# Headless Chromium (Debian's `chromium`): rollgate-cli's HTML report test
# renders the report with JavaScript off and checks its console and text.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update
  apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi

# scipy and numpy: rollgate-canary's Mann-Whitney cross-check against scipy.
if ! python3 -c "import scipy, numpy" >/dev/null 2>&1; then
  python3 -m pip install --quiet scipy numpy
fi

# jsonpatch: rollgate-drift applies its RFC 6902 patches with this independent
# implementation in a cross-check test.
if ! python3 -c "import jsonpatch" >/dev/null 2>&1; then
  python3 -m pip install --quiet jsonpatch
fi
