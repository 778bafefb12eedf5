#!/usr/bin/env python3
"""Side-by-side benchmark of rollgate-canary against scipy and a Kayenta-style
Python reference, in one run on the same seeded data.

    python3 benches/canary/bench.py

Builds the Rust example in release, writes the samples as f64 files, times
scipy.stats.mannwhitneyu (2 x 10^6 samples, continuous and heavy ties) and the
Kayenta-style judgement (benches/canary/kayenta_ref.py, 2 x 10^5 samples), runs
`cargo run --release -p rollgate-canary --example bench` on the same files and
prints a Markdown table with the ratios.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
import kayenta_ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def best(runs, f):
    t_best, out = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        out = f()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def main():
    rng = np.random.default_rng(20261123)
    d = tempfile.mkdtemp(prefix="canary-bench-")
    data = {
        "mw_x": rng.lognormal(np.log(100), 0.5, 1_000_000),
        "mw_y": rng.lognormal(np.log(100.5), 0.5, 1_000_000),
        # heavy ties: latencies in 10 ms buckets, most requests in a few buckets
        "mwt_x": np.round(rng.lognormal(np.log(100), 0.5, 1_000_000) / 10) * 10,
        "mwt_y": np.round(rng.lognormal(np.log(100.5), 0.5, 1_000_000) / 10) * 10,
        "judge_x": rng.lognormal(np.log(100), 0.5, 100_000),
        "judge_y": rng.lognormal(np.log(101), 0.5, 100_000),
    }
    for k, v in data.items():
        v.astype("<f8").tofile(os.path.join(d, k + ".f64"))
    # End to end (issue 13): 10^6 + 10^6 latencies as a SAMPLES.json,
    # whole milliseconds and continuous; the canary 1 % slower (inside T).
    e2e = {
        "ms": (np.round(rng.lognormal(np.log(100), 0.5, 1_000_000)),
               np.round(rng.lognormal(np.log(101), 0.5, 1_000_000))),
        "cont": (rng.lognormal(np.log(100), 0.5, 1_000_000),
                 rng.lognormal(np.log(101), 0.5, 1_000_000)),
    }
    for k, (b, c) in e2e.items():
        with open(os.path.join(d, f"e2e_{k}.json"), "w") as f:
            if k == "ms":
                b, c = b.astype(int), c.astype(int)
            json.dump({"metrics": {"latency_ms": {"baseline": b.tolist(), "canary": c.tolist()}}}, f)

    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "rollgate-canary",
                           "--example", "bench"], cwd=ROOT, env=env)
    rust = json.loads(subprocess.check_output(
        [os.path.join(env["CARGO_TARGET_DIR"], "release", "examples", "bench"), d]))

    mw_s, mw = best(3, lambda: stats.mannwhitneyu(data["mw_x"], data["mw_y"],
                                                  method="asymptotic"))
    mwt_s, mwt = best(3, lambda: stats.mannwhitneyu(data["mwt_x"], data["mwt_y"],
                                                    method="asymptotic"))
    ref_s, ref = best(2, lambda: kayenta_ref.wilcox_test(data["judge_y"], data["judge_x"], 0.95))
    ms_b, ms_c = e2e["ms"]
    e2e_ms_s, e2e_ms = best(3, lambda: stats.mannwhitneyu(ms_b, ms_c, method="asymptotic"))

    def load_and_test():
        with open(os.path.join(d, "e2e_cont.json")) as f:
            doc = json.load(f)["metrics"]["latency_ms"]
        return stats.mannwhitneyu(doc["baseline"], doc["canary"], method="asymptotic")
    e2e_cont_s, e2e_cont = best(3, load_and_test)

    rows = [
        ("Mann-Whitney U, 2 x 10^6 continuous", mw_s, rust["mw_s"], mw.pvalue, rust["mw_p"]),
        ("Mann-Whitney U, 2 x 10^6 heavy ties", mwt_s, rust["mw_ties_s"], mwt.pvalue, rust["mw_ties_p"]),
        ("full judgement with HL CI, 2 x 10^5 (vs Kayenta-style R wilcox.test algorithm)",
         ref_s, rust["judge_s"], ref[0], rust["judge_p"]),
    ]
    print(f"numpy {np.__version__}, scipy {__import__('scipy').__version__}, "
          f"python {sys.version.split()[0]}, cpus {os.cpu_count()}\n")
    print("| benchmark | Python reference | rollgate-canary | speed-up | p (reference) | p (rollgate) |")
    print("|---|---|---|---|---|---|")
    for name, py, rs, p_py, p_rs in rows:
        print(f"| {name} | {py*1e3:.1f} ms | {rs*1e3:.2f} ms | {py/rs:.0f}x | {p_py:.6g} | {p_rs:.6g} |")
    print()
    print("| end to end (issue 13) | Python reference | rollgate-canary (read + parse + every check + HL interval) | speed-up | target | verdict |")
    print("|---|---|---|---|---|---|")
    print(f"| 2 x 10^6 whole-ms samples vs scipy mannwhitneyu alone on the in-memory arrays | {e2e_ms_s*1e3:.1f} ms | "
          f"{rust['e2e_ms_s']*1e3:.1f} ms | {e2e_ms_s/rust['e2e_ms_s']:.1f}x | >= 3x | {rust['e2e_ms_verdict']} ({rust['e2e_checks']} checks) |")
    print(f"| 2 x 10^6 continuous samples vs json.load + scipy mannwhitneyu | {e2e_cont_s*1e3:.1f} ms | "
          f"{rust['e2e_cont_s']*1e3:.1f} ms | {e2e_cont_s/rust['e2e_cont_s']:.1f}x | >= 3x | {rust['e2e_cont_verdict']} |")
    print(f"| judgement of two 200-bucket histograms | - | {rust['hist200_s']*1e6:.1f} us | - | <= 50 us | "
          f"{rust['hist200_verdict']} ({rust['hist200_checks']} checks) |")
    print(f"\nscipy p (whole-ms, two-sided, unscaled) {e2e_ms.pvalue:.6g}; json.load+scipy p {e2e_cont.pvalue:.6g}")
    print(f"\nHodges-Lehmann shift: reference {ref[2]:.4f} CI [{ref[1][0]:.4f}, {ref[1][1]:.4f}]; "
          f"rollgate {rust['judge_shift']:.4f} CI [{rust['judge_ci'][0]:.4f}, {rust['judge_ci'][1]:.4f}]")
    print(f"latency sketch: {rust['sketch_ns_per_insert']:.2f} ns/insert, "
          f"{rust['sketch_bytes']} bytes, p99 {rust['sketch_p99']:.2f} "
          f"(exact p99 of the same stream {np.percentile(np.concatenate([data['judge_x'], data['judge_y']]), 99):.2f})")


if __name__ == "__main__":
    main()
