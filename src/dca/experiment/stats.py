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
