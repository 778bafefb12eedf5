"""How much power any test has against the harness's hardest family.

The bimodal slow path (5 % of canary requests 3x slower, log-normal
latencies, median 100 ms, sigma 0.5) at 2 000 requests per cohort, tested
against the baseline scaled by the 5 % tolerance. Prints the detection
rate of three one-sided tests at several levels:

- `p99 exceedance`: canary values above the scaled baseline's top 1 %
  (rollgate's p99 tail test, exact null distribution);
- `pooled top 1 %`: canary values among the pooled top 1 % (hypergeometric,
  exact);
- `weighted tail`: rollgate's p99 tail test, the canary counts above the
  scaled baseline's top 1, 2, 4, 8, 16, 32 (0.05 % to 1.6 %) summed; its
  exact null is in `tail_test.py`, here critical values come from the
  same simulated nulls as the LR test's (for speed);
- `LR-optimal ranks`: the linear rank test whose scores are the log
  likelihood ratio of this very alternative (the most powerful rank test
  against it; it needs the alternative known in advance, so it is a
  bound, not a usable check). Its normal approximation is far from exact
  in the tail, so its critical values are the null statistic's empirical
  quantiles over NULL_TRIALS simulated nulls.

Then, for the alpha split: the error-rate rows' expected detection (exact
sums over both binomials) of the conditional binomial test at the levels
the critical metric would keep if the latency metric got more than its
0.001, against the single test at 0.01 (the issue's 2-point bound).

    python3 benches/canary/power_bound.py [TRIALS] [NULL_TRIALS]
"""
import sys

import numpy as np
from scipy import stats
from scipy.special import gammaln

n = 2000
trials = int(sys.argv[1]) if len(sys.argv) > 1 else 400
null_trials = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
levels = (6e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 1e-2)
CUTS = (1, 2, 4, 8, 16, 32)
N = 2 * n
u = (np.arange(1, N + 1) - 0.5) / N
x = np.exp(np.log(105) + 0.5 * stats.norm.ppf(u))
f_scaled = stats.lognorm.pdf(x, 0.5, scale=105)
f_canary = 0.95 * stats.lognorm.pdf(x, 0.5, scale=100) + 0.05 * stats.lognorm.pdf(x, 0.5, scale=300)
lr = np.log(f_canary / f_scaled)


def draw(rng, slow):
    v = rng.lognormal(np.log(100), 0.5, n)
    if slow:
        v = np.where(rng.random(n) < 0.05, v * 3, v)
    return v


def tail_sum(b, c):
    bs = np.sort(b)
    return sum(int((c > bs[n - r]).sum()) for r in CUTS)


def pvalues(b, c):
    """(p99 exceedance, pooled top 1 %, weighted tail sum, LR z) statistics."""
    bs = np.sort(b)
    r = int(np.ceil(n * 0.01))
    k = int((c > bs[n - r]).sum())
    # P(K >= k), K = canary values above the r-th largest of the baseline:
    # P(K = j) = C(j + r - 1, j) C(n - j + n - r, n - j) / C(2n, n).
    j = np.arange(k, n + 1)
    lc = lambda a, bb: gammaln(a + 1) - gammaln(bb + 1) - gammaln(a - bb + 1)
    p99 = np.exp(lc(j + r - 1, j) + lc(n - j + n - r, n - j) - lc(N, n)).sum()
    pooled = np.concatenate([b, c])
    is_c = np.argsort(pooled) >= n
    K = int(round(0.01 * N))
    top = stats.hypergeom.sf(is_c[-K:].sum() - 1, N, n, K)
    s = lr[is_c].sum()
    mu = n * lr.mean()
    var = n * (N - n) / (N * (N - 1)) * ((lr - lr.mean()) ** 2).sum()
    return p99, top, tail_sum(b, c), (s - mu) / np.sqrt(var)


def lr_z(b, c):
    is_c = np.argsort(np.concatenate([b, c])) >= n
    return lr[is_c].sum()


rng = np.random.default_rng(1)
mu = n * lr.mean()
sd = np.sqrt(n * (N - n) / (N * (N - 1)) * ((lr - lr.mean()) ** 2).sum())
# At the boundary of the null: the canary distributed as the scaled baseline.
null_z, null_t = [], []
for _ in range(null_trials):
    b0, c0 = draw(rng, False) * 1.05, draw(rng, False) * 1.05
    null_z.append((lr_z(b0, c0) - mu) / sd)
    null_t.append(tail_sum(b0, c0))
null_z, null_t = np.array(null_z), np.array(null_t)
critical = {a: np.quantile(null_z, 1 - a) for a in levels}
critical_t = {a: np.quantile(null_t, 1 - a) for a in levels}
print(f"LR-optimal ranks: empirical critical z over {null_trials} nulls: "
      + ", ".join(f"{a:.1e} -> {critical[a]:.2f} (normal {stats.norm.isf(a):.2f})" for a in levels))


for label, slow in (("null boundary (canary = scaled baseline)", False), ("bimodal slow path", True)):
    rng = np.random.default_rng(20261206)
    scale = 1.0 if slow else 1.05
    ps = np.array([pvalues(draw(rng, False) * 1.05, draw(rng, slow) * scale) for _ in range(trials)])
    print(f"{label}, {trials} trials: rejection rate at level")
    print("  test               " + "  ".join(f"{a:>8.1e}" for a in levels))
    for i, name in enumerate(("p99 exceedance", "pooled top 1 %", "weighted tail", "LR-optimal ranks")):
        rate = [(ps[:, i] > critical_t[a]).mean() if i == 2 else
                (ps[:, i] >= critical[a]).mean() if i == 3 else (ps[:, i] <= a).mean() for a in levels]
        print(f"  {name:<18} " + "  ".join(f"{r:8.3f}" for r in rate))


def error_power(base, ratio, trials, level):
    """Exact detection rate of the conditional binomial test (ratio <= 1.5)."""
    hi = lambda m: int(m + 12 * np.sqrt(m) + 30)
    eb, ec = np.arange(hi(base * trials)), np.arange(hi(base * ratio * trials))
    pb, pc = stats.binom.pmf(eb, trials, base), stats.binom.pmf(ec, trials, base * ratio)
    EB, EC = np.meshgrid(eb, ec, indexing="ij")
    reject = ((EB + EC) > 0) & (stats.binom.sf(EC - 1, EB + EC, 0.6) <= level)
    return float((pb[:, None] * pc[None, :] * reject).sum())


crit_levels = (0.009, 0.0088, 0.0085, 0.008)
print("error-rate rows: detection at 0.01, and the change (pp) at the critical metric's level")
print("  base   ratio  trials   at 0.01  " + "  ".join(f"{l:>7}" for l in crit_levels))
for base in (0.0005, 0.002, 0.01):
    for ratio in (2, 3):
        for trials in (5000, 50000):
            ref = error_power(base, ratio, trials, 0.01)
            diffs = [100 * (error_power(base, ratio, trials, l) - ref) for l in crit_levels]
            print(f"  {base:<6} {ratio}x     {trials:<6} {100 * ref:7.2f}  "
                  + "  ".join(f"{d:+7.2f}" for d in diffs))
