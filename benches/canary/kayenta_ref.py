#!/usr/bin/env python3
"""A Kayenta-style reference judge in Python (numpy/scipy).

Kayenta's MannWhitneyClassifier calls R's ``wilcox.test(experiment, control,
conf.int=TRUE, conf.level=0.95)`` and classifies a metric High when the lower
end of the confidence interval exceeds ``fraction * |estimate|`` (fraction
0.25), Low when the upper end is below ``-fraction * |estimate|``. This file
reimplements that algorithm as R does it for large samples (``exact=FALSE``,
``correct=TRUE``): the p-value from the tie-corrected normal approximation, and
the Hodges-Lehmann estimate and confidence limits as roots (Brent's method,
``tol=1e-4`` like R's ``uniroot``) of the rank statistic of ``x - mu`` against
``y``, each evaluation re-ranking both samples.

It is the reference for rollgate-canary's benchmark ("a full judgement with
Hodges-Lehmann CI") and for the decision rules the simulation harness ports.
"""
import numpy as np
from scipy import optimize, stats


def _tie_term(ranks):
    _, t = np.unique(ranks, return_counts=True)
    return float((t.astype(np.float64) ** 3 - t).sum())


def wilcox_test(x, y, conf_level=0.95):
    """R's wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    nx, ny = len(x), len(y)
    n = nx + ny
    r = stats.rankdata(np.concatenate([x, y]))
    statistic = r[:nx].sum() - nx * (nx + 1) / 2
    z = statistic - nx * ny / 2
    sigma = np.sqrt(nx * ny / 12 * ((n + 1) - _tie_term(r) / (n * (n - 1))))
    correction = 0.5 * np.sign(z)
    z = (z - correction) / sigma
    p = 2 * min(stats.norm.cdf(z), stats.norm.sf(z))

    alpha = 1 - conf_level
    mumin, mumax = x.min() - y.max(), x.max() - y.min()

    def wdiff(d, zq):
        dr = stats.rankdata(np.concatenate([x - d, y]))
        dz = dr[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        corr = np.sign(dz) * 0.5
        sig = np.sqrt(nx * ny / 12 * ((n + 1) - _tie_term(dr) / (n * (n - 1))))
        if sig == 0:
            return -zq
        return (dz - corr) / sig - zq

    def root(zq):
        f_lo, f_hi = wdiff(mumin, zq), wdiff(mumax, zq)
        if f_lo * f_hi > 0:
            return mumin if abs(f_lo) < abs(f_hi) else mumax
        return optimize.brentq(wdiff, mumin, mumax, args=(zq,), xtol=1e-4)

    lo = root(stats.norm.ppf(alpha / 2, loc=0, scale=1) * -1)
    hi = root(stats.norm.ppf(alpha / 2))
    est = root(0.0)
    return p, (lo, hi), est


def classify(control, experiment, fraction=0.25, conf_level=0.95):
    """Kayenta MannWhitneyClassifier: 'High', 'Low', 'Pass' or 'Nodata'."""
    if len(control) == 0 or len(experiment) == 0:
        return "Nodata", None
    if np.array_equal(control, experiment):
        return "Pass", None
    p, (lo, hi), est = wilcox_test(experiment, control, conf_level)
    bound = fraction * abs(est)
    if lo > bound:
        return "High", (p, lo, hi, est)
    if hi < -bound:
        return "Low", (p, lo, hi, est)
    return "Pass", (p, lo, hi, est)


def judge(metrics, pass_score=95.0, marginal=75.0):
    """metrics: {name: (control, experiment)} -> (verdict, score, per-metric)."""
    results = {name: classify(c, e) for name, (c, e) in metrics.items()}
    with_data = [r for r, _ in results.values() if r != "Nodata"]
    if not with_data:
        return "inconclusive", None, results
    score = 100.0 * sum(r == "Pass" for r in with_data) / len(with_data)
    verdict = "promote" if score >= pass_score else ("inconclusive" if score >= marginal else "rollback")
    return verdict, score, results


if __name__ == "__main__":
    rng = np.random.default_rng(1)
    c = rng.lognormal(np.log(100), 0.5, 2000)
    e = rng.lognormal(np.log(110), 0.5, 2000)
    print(judge({"latency_ms": (c, e)}))
