"""Intervals for an experiment's figures: a two-way bootstrap over seeds and problems.

Every arm is evaluated greedily on the same held-out problems under every seed, so a figure is
a statistic of a seeds x problems matrix. The interval resamples seeds and problems
independently, with replacement (the same problems for every resampled seed): it counts both
the spread between training seeds and the finite problem set. With one seed it is the plain
problem bootstrap. Paired differences (arm minus baseline) are taken cell by cell, on the same
problem under the same seed, before resampling.

The minimum detectable effect is ``(z_0.975 + z_0.80) x SE`` of the paired difference (two-sided
5 % test, 80 % power), the SE being the bootstrap standard deviation.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Z_975 = 1.959964
Z_80 = 0.841621
MDE_FACTOR = Z_975 + Z_80


def _resample(n_seeds: int, n_problems: int, rng: np.random.Generator, draws: int):
    for _ in range(draws):
        yield rng.integers(n_seeds, size=n_seeds), rng.integers(n_problems, size=n_problems)


def bootstrap(
    statistic: Callable[..., float], *matrices: np.ndarray, draws: int = 2000, seed: int = 0
) -> dict[str, float | None]:
    """Point value, 95 % percentile interval and SE of `statistic(*matrices)` (seeds x problems each)."""
    if not matrices or matrices[0].size == 0:
        return {"value": None, "low": None, "high": None, "se": None}
    with np.errstate(invalid="ignore", divide="ignore"):
        value = statistic(*matrices)
        n_seeds, n_problems = matrices[0].shape
        rng = np.random.default_rng(seed)
        samples = []
        for seeds, problems in _resample(n_seeds, n_problems, rng, draws):
            s = statistic(*(m[np.ix_(seeds, problems)] for m in matrices))
            if np.isfinite(s):
                samples.append(s)
    if not np.isfinite(value) or len(samples) < draws // 2:
        return {"value": float(value) if np.isfinite(value) else None, "low": None, "high": None, "se": None}
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"value": float(value), "low": float(low), "high": float(high), "se": float(np.std(samples, ddof=1))}


def nanmean(m: np.ndarray) -> float:
    return float(np.nanmean(m)) if np.isfinite(m).any() else float("nan")


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(np.nansum(denominator))
    return float(np.nansum(numerator)) / total if total else float("nan")


def relative_difference(arm: np.ndarray, base: np.ndarray) -> float:
    """mean(arm) / mean(base) - 1 over the cells where both are defined."""
    both = np.isfinite(arm) & np.isfinite(base)
    b = float(base[both].mean()) if both.any() else float("nan")
    return float(arm[both].mean()) / b - 1 if both.any() and b else float("nan")


def per_seed_sd(m: np.ndarray) -> float | None:
    """Standard deviation of the per-seed means (the seed-to-seed spread); None with one seed."""
    if m.shape[0] < 2:
        return None
    with np.errstate(invalid="ignore"):
        means = np.nanmean(m, axis=1)
    return float(np.std(means, ddof=1))


def mde(se: float | None) -> float | None:
    return MDE_FACTOR * se if se is not None else None


# ---------------------------------------------------------------------------------------------
# Seed-level paired t statistics (issue 21): with fewer than ~10 seeds, a bootstrap over seeds
# has few distinct outcomes and its intervals under-cover; the unit of replication is the seed,
# so each comparison to the baseline is a paired t on the per-seed differences (n - 1 df).

#: Non-inferiority margin of accuracy against the baseline, in accuracy points (0.03 = 3 points).
NON_INFERIORITY_MARGIN = 0.03


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t (bisection on `t_cdf`, to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


def paired_t(differences: list[float] | np.ndarray, *, margin: float | None = None) -> dict[str, float | int | None]:
    """Seed-level paired t statistics of per-seed differences (arm minus baseline).

    ``mean``, ``low``/``high`` (95 % t-interval, n - 1 df), ``p`` (two-sided, H0: no
    difference), ``mde`` ((t_0.975 + t_0.80) x SE, n - 1 df: the difference a two-sided 5 % test
    detects with 80 % power), ``n``, ``sd``, ``se``. With `margin` (> 0) also the
    non-inferiority test of H0: difference <= -margin: ``ni_low`` (one-sided 95 % lower bound),
    ``ni_p`` and ``non_inferior`` (ni_low > -margin). None where n < 2 or the SD is 0.
    """
    d = np.asarray([x for x in differences if x is not None and np.isfinite(x)], dtype=float)
    n = int(d.size)
    out: dict[str, float | int | None] = {"n": n, "mean": float(d.mean()) if n else None}
    keys = ("sd", "se", "low", "high", "p", "mde") + (("ni_low", "ni_p", "non_inferior") if margin is not None else ())
    out.update({k: None for k in keys})
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    df = n - 1
    t975 = t_quantile(0.975, df)
    out.update(sd=sd, se=se, low=out["mean"] - t975 * se, high=out["mean"] + t975 * se, mde=(t975 + t_quantile(0.80, df)) * se)
    if se > 0:
        out["p"] = 2.0 * (1.0 - t_cdf(abs(out["mean"]) / se, df))
    if margin is not None:
        out["ni_low"] = out["mean"] - t_quantile(0.95, df) * se
        out["non_inferior"] = bool(out["ni_low"] > -margin)
        if se > 0:
            out["ni_p"] = 1.0 - t_cdf((out["mean"] + margin) / se, df)
    return out


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1); None stays None."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
