#!/usr/bin/env python3
"""Side by side in one run (issue 15's two benchmarks): rollgate's
exposition parser against Python's prometheus_client parser on the same
10,000-series page, and the scrape gate's work per phase for 100 targets
served over loopback HTTP (crates/rollgate/examples/gate_bench.rs).

    flock /tmp/bench.lock python3 benches/exposition/bench.py

Needs `pip install prometheus_client`; builds the Rust examples in release.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from prometheus_client.parser import text_string_to_metric_families
from importlib.metadata import version


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    page = os.path.join(tempfile.mkdtemp(), "page.prom")
    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "rollgate", "--no-default-features", "--example", "exposition_bench", "--", page],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
    rust = json.loads(out.strip().splitlines()[-1])
    text = open(page).read()
    n = sum(len(f.samples) for f in text_string_to_metric_families(text))
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for f in text_string_to_metric_families(text):
            pass
        best = min(best, time.perf_counter() - t)
    py_ms = best * 1000
    print(f"page: {rust['series']} series, {rust['bytes']} bytes (prometheus_client read {n} samples)")
    print(f"| parser | best time | speed-up |")
    print(f"|---|---|---|")
    print(f"| prometheus_client {version('prometheus_client')} (Python {sys.version.split()[0]}), best of 5 | {py_ms:.2f} ms | 1× |")
    print(f"| rollgate::exposition::parse, best of 50 | {rust['best_ms']:.3f} ms | {py_ms / rust['best_ms']:.0f}× |")

    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "rollgate", "--no-default-features", "--features", "plan", "--example", "gate_bench"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
    g = json.loads(out.strip().splitlines()[-1])
    rounds = g["rounds"]
    per_phase = g["round_median_ms"] * rounds + g["evaluate_median_ms"]
    print()
    print(f"gate: {g['targets']} targets on loopback HTTP, {g['series_per_page']} series / {g['page_bytes']} bytes per page, "
          f"a phase of {rounds} scrapes (30 s bake every 1 s), verdict {g['verdict']}")
    print("| gate work | median | max |")
    print("|---|---|---|")
    print(f"| one scrape round (100 GETs, parse, select), first round with new connections {g['first_round_ms']:.2f} ms | {g['round_median_ms']:.2f} ms | {g['round_max_ms']:.2f} ms |")
    print(f"| judgement at the end of the bake (increases over {rounds} scrapes × 100 targets, analysis) | {g['evaluate_median_ms']:.2f} ms | {g['evaluate_max_ms']:.2f} ms |")
    print(f"| per phase: {rounds} rounds + judgement | {per_phase:.2f} ms | |")


if __name__ == "__main__":
    main()
