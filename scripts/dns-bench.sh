#!/usr/bin/env bash
# Load generator benchmark: one dns-provisioner (release, v3, logs at
# RUST_LOG, default warn) on a free loopback port, dns-loadgen (release) at
# full speed with C connections (default 32) for D (default 10s). Prints the
# requests per second, the client's and the provisioner's own p50/p99, the
# CPU seconds each process used, and the load average before and after.
# Wall-clock numbers: run it under `flock /tmp/bench.lock` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p dns-provisioner
b="${CARGO_TARGET_DIR:-$PWD/target}/release"
dir="$(mktemp -d)"
stop() { "$b/dns-provisioner" stop --dir "$dir/run"; rm -rf "$dir"; }
trap stop EXIT
addr="$("$b/dns-provisioner" free-addrs 1)"
RUST_LOG="${RUST_LOG:-warn}" "$b/dns-provisioner" deploy --dir "$dir/run" --name bench-1 --addr "$addr" --version v3
pid="$(cat "$dir/run/bench-1.pid")"
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }  # user + system seconds
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
before="$(cpu "$pid")"
"$b/dns-loadgen" --target "$addr" --seed 1 --rate 0 --concurrency "${C:-32}" --duration "${D:-10s}"
echo "dns-provisioner: $(awk -v a="$(cpu "$pid")" -v b="$before" 'BEGIN { printf "%.2f", a - b }') s of CPU (user + system) during the run"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
