"""Seed-level paired t statistics (dca.experiment.stats): quantiles, intervals, Holm, NI."""

from __future__ import annotations

import math

import pytest

from dca.experiment.stats import betainc, holm, paired_t, t_cdf, t_quantile


@pytest.mark.parametrize(
    "p, df, expected",
    [
        (0.975, 1, 12.706204736), (0.975, 2, 4.302652730), (0.975, 5, 2.570581836), (0.975, 9, 2.262157163),
        (0.975, 30, 2.042272456), (0.80, 1, 1.376381920), (0.80, 5, 0.919543780), (0.95, 5, 2.015048373),
        (0.995, 3, 5.840909310),
    ],
)  # fmt: skip
def test_t_quantiles_match_published_tables(p, df, expected) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)
    assert t_cdf(expected, df) == pytest.approx(p, abs=1e-9)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-6)


def test_incomplete_beta_closed_forms() -> None:
    # I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a
    for x in (0.01, 0.3, 0.77, 0.999):
        assert betainc(1, 3.5, x) == pytest.approx(1 - (1 - x) ** 3.5, rel=1e-12)
        assert betainc(2.5, 1, x) == pytest.approx(x**2.5, rel=1e-12)
    # t with 1 df is Cauchy: P(T <= t) = 1/2 + atan(t)/pi
    for t in (-3.0, 0.4, 7.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


def test_paired_t_interval_uses_n_minus_one_df() -> None:
    d = [0.02, 0.05, -0.01, 0.04]
    r = paired_t(d, margin=0.03)
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    se = sd / 2
    assert r["n"] == 4 and r["mean"] == pytest.approx(mean)
    assert r["low"] == pytest.approx(mean - 3.182446305 * se, abs=1e-7)
    assert r["high"] == pytest.approx(mean + 3.182446305 * se, abs=1e-7)
    assert r["mde"] == pytest.approx((3.182446305 + 0.978472312) * se, abs=1e-7)
    assert r["p"] == pytest.approx(2 * (1 - t_cdf(mean / se, 3)))
    assert r["ni_low"] == pytest.approx(mean - 2.353363435 * se, abs=1e-7)
    assert r["non_inferior"] is (r["ni_low"] > -0.03)
    # two seeds: the interval is wide (t = 12.7), not 1.96 x SE
    two = paired_t([0.0, 0.1])
    assert two["high"] - two["mean"] == pytest.approx(12.706204736 * 0.05, abs=1e-6)
    assert paired_t([0.1])["low"] is None


def test_holm_table() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([None, 0.2, 0.9]) == [None, pytest.approx(0.4), pytest.approx(0.9)]
    assert holm([0.6, 0.7]) == [pytest.approx(1.0), pytest.approx(1.0)]
