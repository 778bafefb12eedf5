#!/usr/bin/env bash
# Prints the demo's plan file for one release of the DNS provisioner:
#   plan.sh VERSION PREVIOUS BIN RUN_DIR BAKE ADDR...
# The fleet's targets are dns-1..dns-N on the given loopback addresses; the
# command deployer restarts a target's process with the new version
# (`dns-provisioner deploy`), and the canary gate judges the metrics it
# scrapes from every target's /metrics (analysis.toml, beside this script).
# Digests are the sha256 of the version label (the demo builds one binary).
set -euo pipefail
version=$1 previous=$2 bin=$3 run=$4 bake=$5
shift 5
digest() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }
targets=""
i=0
for addr in "$@"; do
  i=$((i + 1))
  targets+="${targets:+, }{ name = \"dns-$i\", addr = \"$addr\" }"
done
cat <<PLAN
service = "dns"
artifact = { version = "$version", digest = "$(digest "$version")" }
previous = { version = "$previous", digest = "$(digest "$previous")" }
targets = [$targets]

[deployer]
kind = "command"
deploy = "$bin deploy --dir $run --name {target} --addr {addr} --version {version}"
current = "cat $run/{target}.version 2>/dev/null || true"
ready = "$bin ready --addr {addr}"
timeout = "30s"

[readiness]
interval = "200ms"

[strategy]
kind = "canary"
steps = [25, 50, 100]
bake = "$bake"

[gate]
kind = "canary"
analysis = "analysis.toml"
lookback = "$bake"
max_errors = 2
retry_after = "1s"

[gate.scrape]
url = "http://{addr}/metrics"
interval = "500ms"

[gate.metrics.errors]
events = { counter = "http_server_errors_total" }
trials = { counter = "http_server_requests_total" }

[gate.metrics.read_latency_ms]
histogram = "http_server_request_duration_seconds"
scale = 1000
labels = { method = "GET", route = "/records/{name}" }
PLAN
