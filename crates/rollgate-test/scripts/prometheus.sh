#!/usr/bin/env bash
# Starts and stops a throwaway Prometheus on loopback for tests.
#
#   scripts/prometheus.sh start WORKDIR TARGET [TARGET...]
#       Installs Debian's prometheus if /usr/bin/prometheus is missing, writes
#       WORKDIR/prometheus.yml scraping each TARGET (host:port, path /metrics)
#       every 1s, starts prometheus on 127.0.0.1 on a free port with its data in
#       WORKDIR/data, waits until /-/ready answers, and writes
#       WORKDIR/prometheus.url and WORKDIR/prometheus.pid.
#   scripts/prometheus.sh stop WORKDIR
#       Kills the pid in WORKDIR/prometheus.pid.
set -euo pipefail

usage() {
  echo "usage: $0 start WORKDIR TARGET [TARGET...] | stop WORKDIR" >&2
  exit 2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cmd="${1:-}"
workdir="${2:-}"
[ -n "$cmd" ] && [ -n "$workdir" ] || usage

case "$cmd" in
  start)
    shift 2
    [ "$#" -ge 1 ] || usage
    if [ ! -x /usr/bin/prometheus ]; then
      apt-get update
      apt-get install -y --no-install-recommends prometheus
    fi
    mkdir -p "$workdir/data"
    workdir="$(cd "$workdir" && pwd)"
    {
      echo "global:"
      echo "  scrape_interval: 1s"
      echo "  evaluation_interval: 1s"
      echo "scrape_configs:"
      echo "  - job_name: targets"
      echo "    metrics_path: /metrics"
      echo "    static_configs:"
      echo "      - targets:"
      for t in "$@"; do
        echo "          - \"$t\""
      done
    } > "$workdir/prometheus.yml"
    url=""
    for attempt in 1 2 3; do
      port="$(free_port)"
      /usr/bin/prometheus \
        --config.file="$workdir/prometheus.yml" \
        --storage.tsdb.path="$workdir/data" \
        --web.listen-address="127.0.0.1:$port" \
        --log.level=warn \
        > "$workdir/prometheus.log" 2>&1 &
      pid=$!
      echo "$pid" > "$workdir/prometheus.pid"
      for _ in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
          break
        fi
        if python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/-/ready", timeout=1).read()
PY
        then
          url="http://127.0.0.1:$port"
          break
        fi
        sleep 0.1
      done
      [ -n "$url" ] && break
      kill "$pid" 2>/dev/null || true
    done
    if [ -z "$url" ]; then
      echo "prometheus did not become ready; log:" >&2
      cat "$workdir/prometheus.log" >&2 || true
      exit 1
    fi
    echo "$url" > "$workdir/prometheus.url"
    ;;
  stop)
    if [ -f "$workdir/prometheus.pid" ]; then
      pid="$(cat "$workdir/prometheus.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$workdir/prometheus.pid"
    fi
    ;;
  *)
    usage
    ;;
esac
