"""Which cutoffs the weighted tail test should use against the bimodal slow path.

The harness's hardest family (5 % of canary requests 3x slower, log-normal
latencies, median 100 ms, sigma 0.5, 2 000 requests per cohort): the
detection rate of the weighted tail statistic (the canary counts above the
scaled baseline's top r values, summed over the cutoffs) for several cutoff
sets, at levels set by simulated nulls at the boundary (canary = scaled
baseline). rollgate uses 1..32 (0.05 % to 1.6 %).

    python3 benches/canary/tail_cutoffs.py [NULL_TRIALS] [TRIALS]
"""
import sys

import numpy as np

n = 2000
variants = {
    "1..32": (1, 2, 4, 8, 16, 32),
    "1..64": (1, 2, 4, 8, 16, 32, 64),
    "1..128": (1, 2, 4, 8, 16, 32, 64, 128),
    "1..256": (1, 2, 4, 8, 16, 32, 64, 128, 256),
    "2..128": (2, 4, 8, 16, 32, 64, 128),
    "4..256": (4, 8, 16, 32, 64, 128, 256),
}
null_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
trials = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
levels = (6e-4, 1e-3, 1.5e-3, 2e-3)


def draw(rng, slow):
    v = rng.lognormal(np.log(100), 0.5, n)
    if slow:
        v = np.where(rng.random(n) < 0.05, v * 3, v)
    return v


def stat(b, c):
    """The weighted tail sum of every cutoff set."""
    bs, cs = np.sort(b), np.sort(c)
    return {
        name: sum(n - np.searchsorted(cs, bs[n - r], side="right") for r in cuts)
        for name, cuts in variants.items()
    }


def sums(seed, slow, count):
    rng = np.random.default_rng(seed)
    out = {k: [] for k in variants}
    for _ in range(count):
        s = stat(draw(rng, False) * 1.05, draw(rng, slow) * (1.0 if slow else 1.05))
        for k in variants:
            out[k].append(s[k])
    return {k: np.array(v) for k, v in out.items()}


nulls = sums(1, False, null_trials)
alts = sums(20261206, True, trials)
print(f"bimodal slow path, {trials} trials, critical values from {null_trials} nulls")
for k in variants:
    crit = [np.quantile(nulls[k], 1 - a) for a in levels]
    rates = " ".join(f"{a:.1e}:{(alts[k] > c).mean():.3f}" for a, c in zip(levels, crit))
    print(f"top {k:<7} null mean {nulls[k].mean():6.1f}  {rates}")
