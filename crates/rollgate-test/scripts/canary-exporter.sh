#!/usr/bin/env bash
# A tiny Prometheus exporter for rollgate-canary's tests: serves /metrics on
# loopback with a baseline and a canary cohort whose latency and error
# counters move on every scrape (deterministically).
#
#   scripts/canary-exporter.sh start WORKDIR   writes WORKDIR/exporter.addr (host:port)
#                                              and WORKDIR/exporter.pid
#   scripts/canary-exporter.sh stop WORKDIR
#   scripts/canary-exporter.sh prometheus WORKDIR
#       starts the exporter, then Prometheus scraping it (scripts/prometheus.sh)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
workdir="${2:-}"
if [ -z "$cmd" ] || [ -z "$workdir" ]; then
  echo "usage: $0 start|stop|prometheus WORKDIR" >&2
  exit 2
fi

case "$cmd" in
  start)
    mkdir -p "$workdir"
    rm -f "$workdir/exporter.addr"
    python3 - "$workdir" > "$workdir/exporter.log" 2>&1 <<'PY' &
import http.server, os, sys, threading

workdir = sys.argv[1]
lock = threading.Lock()
state = {"scrape": 0, "errors": {"baseline": 0, "canary": 0}, "requests": {"baseline": 0, "canary": 0}}

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path != "/metrics":
            self.send_response(404); self.end_headers(); return
        with lock:
            k = state["scrape"]; state["scrape"] += 1
            for c, e in (("baseline", 1), ("canary", 3)):
                state["errors"][c] += e
                state["requests"][c] += 100
            lines = [
                "# TYPE canary_test_latency_ms gauge",
                f'canary_test_latency_ms{{cohort="baseline"}} {100 + (k * 7) % 11}',
                f'canary_test_latency_ms{{cohort="canary"}} {130 + (k * 5) % 11}',
                "# TYPE canary_test_errors_total counter",
            ]
            for c in ("baseline", "canary"):
                lines.append(f'canary_test_errors_total{{cohort="{c}"}} {state["errors"][c]}')
            lines.append("# TYPE canary_test_requests_total counter")
            for c in ("baseline", "canary"):
                lines.append(f'canary_test_requests_total{{cohort="{c}"}} {state["requests"][c]}')
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
tmp = os.path.join(workdir, "exporter.addr.tmp")
with open(tmp, "w") as f:
    f.write(f"127.0.0.1:{srv.server_address[1]}\n")
os.replace(tmp, os.path.join(workdir, "exporter.addr"))
srv.serve_forever()
PY
    echo $! > "$workdir/exporter.pid"
    for _ in $(seq 1 100); do
      [ -s "$workdir/exporter.addr" ] && exit 0
      sleep 0.05
    done
    echo "exporter did not start; log:" >&2
    cat "$workdir/exporter.log" >&2 || true
    exit 1
    ;;
  stop)
    if [ -f "$workdir/exporter.pid" ]; then
      kill "$(cat "$workdir/exporter.pid")" 2>/dev/null || true
      rm -f "$workdir/exporter.pid"
    fi
    ;;
  prometheus)
    "$0" start "$workdir"
    bash "$here/prometheus.sh" start "$workdir" "$(cat "$workdir/exporter.addr")"
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
