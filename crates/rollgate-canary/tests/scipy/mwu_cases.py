#!/usr/bin/env python3
"""Writes seeded Mann-Whitney cases and scipy's p-values for them.

Usage: mwu_cases.py OUTDIR

For each case it writes OUTDIR/case{i}_x.f64 and case{i}_y.f64 (little-endian
float64) and, in OUTDIR/expected.json, scipy.stats.mannwhitneyu's two-sided
continuity-corrected p-values in asymptotic mode and, when the samples have
no ties, in exact mode. The Rust test rollgate-canary/tests/scipy_crosscheck.rs
reads them back and compares to 1e-12.
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    from scipy import stats
except ImportError:  # installed by scripts/install-test-deps.sh; retry here
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "scipy", "numpy"])
    import numpy as np
    from scipy import stats


def cases(rng):
    # (n1, n2, kind): kind picks the generator
    small = [(1, 1), (1, 2), (1, 7), (2, 2), (3, 4), (5, 5), (4, 9), (8, 8), (7, 20),
             (12, 10), (20, 20), (30, 45), (50, 50)]
    for n1, n2 in small:
        yield n1, n2, "continuous"
        yield n1, n2, "shifted"
        yield n1, n2, "ties"
    for n1, n2 in [(100, 120), (1000, 900), (5000, 50), (20000, 20000)]:
        yield n1, n2, "continuous"
        yield n1, n2, "heavy_ties"
        yield n1, n2, "shifted"
    yield 1_000_000, 1, "continuous"
    yield 1_000_000, 10, "shifted"
    yield 1_000_000, 1_000_000, "heavy_ties"
    yield 1_000_000, 500_000, "lognormal"


def draw(rng, n1, n2, kind):
    if kind == "continuous":
        return rng.normal(100, 15, n1), rng.normal(100, 15, n2)
    if kind == "shifted":
        return rng.normal(100, 15, n1), rng.normal(104, 15, n2)
    if kind == "lognormal":
        return rng.lognormal(4, 0.5, n1), rng.lognormal(4.01, 0.5, n2)
    if kind == "ties":
        return rng.integers(0, 4, n1).astype(float), rng.integers(0, 4, n2).astype(float)
    if kind == "heavy_ties":
        # mostly zeros with a few levels: the shape error counts have
        return (rng.poisson(0.05, n1).astype(float), rng.poisson(0.06, n2).astype(float))
    raise ValueError(kind)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261123)
    expected = []
    for i, (n1, n2, kind) in enumerate(cases(rng)):
        x, y = draw(rng, n1, n2, kind)
        x.astype("<f8").tofile(os.path.join(out, f"case{i}_x.f64"))
        y.astype("<f8").tofile(os.path.join(out, f"case{i}_y.f64"))
        ties = len(np.unique(np.concatenate([x, y]))) < n1 + n2
        r = stats.mannwhitneyu(x, y, use_continuity=True, alternative="two-sided",
                               method="asymptotic")
        row = {"id": i, "kind": kind, "n1": n1, "n2": n2, "ties": bool(ties),
               "u1": float(r.statistic), "asymptotic": float(r.pvalue), "exact": None}
        if not ties and n1 * n2 <= 2500:
            e = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
            row["exact"] = float(e.pvalue)
        expected.append(row)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"scipy": __import__("scipy").__version__, "cases": expected}, f)


if __name__ == "__main__":
    main()
