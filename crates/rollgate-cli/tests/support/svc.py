#!/usr/bin/env python3
"""A small HTTP service for rollgate's canary acceptance tests (stdlib only).

serve:   listens on 127.0.0.1:PORT, serves /records, /health and /metrics
         (Prometheus text: a latency histogram per route, a request counter
         per route and code), and sends itself a steady stream of requests.
         The version label picks the behaviour:
           *-slow    /records takes 150 ms longer (a latency regression)
           *-errors  every 4th /records answers 500 (an error regression)
           *-nometrics  /metrics answers 503 (an endpoint that is down)
deploy:  stops the process recorded for NAME, starts VERSION on ADDR, waits
         until it answers, records the version (what `current` prints).
ready:   exit 0 when ADDR answers /health.
stop:    stops every process recorded in DIR.
"""
import argparse
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.hist = {}  # route -> [bucket counts..., sum, count]
        self.requests = {}  # (route, code) -> n

    def observe(self, route, code, seconds):
        with self.lock:
            h = self.hist.setdefault(route, [0] * len(BUCKETS) + [0.0, 0])
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1
            self.requests[(route, code)] = self.requests.get((route, code), 0) + 1

    def render(self):
        out = [
            "# HELP http_request_duration_seconds Request latency.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        with self.lock:
            for route, h in sorted(self.hist.items()):
                for i, b in enumerate(BUCKETS):
                    out.append(f'http_request_duration_seconds_bucket{{route="{route}",le="{b}"}} {h[i]}')
                out.append(f'http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {h[-1]}')
                out.append(f'http_request_duration_seconds_sum{{route="{route}"}} {h[-2]}')
                out.append(f'http_request_duration_seconds_count{{route="{route}"}} {h[-1]}')
            out.append("# HELP http_requests_total Requests.")
            out.append("# TYPE http_requests_total counter")
            for (route, code), n in sorted(self.requests.items()):
                out.append(f'http_requests_total{{route="{route}",code="{code}"}} {n}')
        return "\n".join(out) + "\n"


def serve(args):
    metrics = Metrics()
    version = args.version
    counter = {"records": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body, ctype="text/plain"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            start = time.monotonic()
            if self.path == "/metrics":
                if version.endswith("-nometrics"):
                    return self.reply(503, "metrics unavailable\n")
                return self.reply(200, metrics.render(), "text/plain; version=0.0.4")
            if self.path == "/health":
                code = 200
                self.reply(code, f"ok {version}\n")
                metrics.observe("/health", code, time.monotonic() - start)
                return
            if self.path == "/records":
                with lock:
                    counter["records"] += 1
                    n = counter["records"]
                time.sleep(0.005 + (0.150 if version.endswith("-slow") else 0.0))
                code = 500 if version.endswith("-errors") and n % 4 == 0 else 200
                self.reply(code, "records\n")
                metrics.observe("/records", code, time.monotonic() - start)
                return
            self.reply(404, "not found\n")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def load():
        conn = None
        while True:
            for path in ("/records", "/health"):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
                    conn.request("GET", path)
                    conn.getresponse().read()
                except Exception:
                    conn = None
                    time.sleep(0.05)
            time.sleep(0.04)

    threading.Thread(target=load, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


def answers(addr, timeout=0.5):
    host, port = addr.rsplit(":", 1)
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        c.request("GET", "/health")
        return c.getresponse().status == 200
    except Exception:
        return False


def started(pid):
    """The process's start time (/proc/PID/stat field 22), or None if gone."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def stop_pid(pidfile):
    # "PID START": a pid whose process has gone may belong to another test's
    # process by now (pids wrap within a long test run); signal it only if
    # it is still the process this file recorded.
    try:
        pid, start = open(pidfile).read().split()
        pid = int(pid)
    except (OSError, ValueError):
        return
    if started(pid) != start:
        os.unlink(pidfile)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        if started(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os.unlink(pidfile)


def deploy(args):
    base = os.path.join(args.dir, args.name)
    stop_pid(base + ".pid")
    port = int(args.addr.rsplit(":", 1)[1])
    for _ in range(100):  # the old process may hold the port a moment longer
        if not answers(args.addr, 0.1):
            break
        time.sleep(0.05)
    log = open(base + ".log", "a")
    p = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "serve", "--port", str(port), "--version", args.version],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    with open(base + ".pid", "w") as f:
        f.write(f"{p.pid} {started(p.pid)}")
    for _ in range(200):
        if answers(args.addr):
            with open(base + ".version", "w") as f:
                f.write(args.version + "\n")
            return 0
        if p.poll() is not None:
            print(f"{args.name}: exited with {p.returncode}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"{args.name}: {args.addr} did not answer", file=sys.stderr)
    return 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--version", required=True)
    d = sub.add_parser("deploy")
    for a in ("--dir", "--name", "--addr", "--version"):
        d.add_argument(a, required=True)
    r = sub.add_parser("ready")
    r.add_argument("--addr", required=True)
    st = sub.add_parser("stop")
    st.add_argument("--dir", required=True)
    args = ap.parse_args()
    if args.cmd == "serve":
        return serve(args)
    if args.cmd == "deploy":
        return deploy(args)
    if args.cmd == "ready":
        return 0 if answers(args.addr) else 1
    if args.cmd == "stop":
        for f in os.listdir(args.dir):
            if f.endswith(".pid"):
                stop_pid(os.path.join(args.dir, f))
        return 0


if __name__ == "__main__":
    sys.exit(main())
