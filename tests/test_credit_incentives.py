"""The incentive audit's property, short version (`dca.experiment.incentives`; the full table comes
from benchmarks/credit_incentives.py and is in docs/credit-policies.md).

When padding is free, no DCA credit policy may raise the padding rate or the trailing-padding
rate more than plain GRPO does (GRPO's drift plus twice the paired standard error is the bound),
and the policies that claim to remove padding must lower it. Policies the full audit shows to
break the property are marked strict xfail with the measured figure: if one stops breaking it,
the test fails and the mark must go.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dca.credit import POLICIES
from dca.experiment.incentives import ARMS, SCENARIOS, audit

UPDATES, SEEDS = 60, range(3)

#: Measured with the full audit (`benchmarks/credit_incentives.py --updates 100 --seeds 6`, padding
#: free; docs/credit-policies.md): trailing-padding drift, against GRPO's -5.5 ± 7.2 points.
RAISES_PADDING = {
    "conserve": "+23.7 ± 6.6 points: a failed completion's penalty lands on useful steps and the answer, none on padding",
    "random": "control: +37.9 ± 2.1 points",
    "signed-random": "control: +12.0 ± 3.4 points",
    "capo": "+26.8 ± 1.4 points: wrong useful steps are penalized, padding never",
    "oar": "+31.3 ± 1.7 points: failed completions weigh useful steps above padding",
}


@pytest.fixture(scope="module")
def free() -> dict:
    arms = [ARMS[name] for name in POLICIES]
    return audit(arms, SCENARIOS["padding-free"], updates=UPDATES, seeds=SEEDS, episodes=600)


def _paired_excess(results: dict, arm: str, measure: str) -> tuple[float, float]:
    d = np.array(results[arm][measure]["drifts"]) - np.array(results["uniform"][measure]["drifts"])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=RAISES_PADDING[name])) if name in RAISES_PADDING else name
        for name, p in POLICIES.items()
        if p.reads_labels
    ],
)
def test_no_policy_raises_padding_beyond_grpo_when_padding_is_free(free, policy) -> None:
    for measure in ("padding_rate", "trailing_padding_rate"):
        excess, se = _paired_excess(free, policy, measure)
        assert excess <= 2 * se + 0.02, f"{policy}: {measure} drifts {100 * excess:+.1f} points beyond GRPO's (SE {100 * se:.1f})"
    if POLICIES[policy].removes_padding:
        for measure in ("padding_rate", "trailing_padding_rate"):
            drift = free[policy][measure]
            assert drift["mean"] + 2 * drift["se"] < 0, f"{policy} claims to remove padding but {measure} drifts {100 * drift['mean']:+.1f} points"


def test_uncapped_signed_rewards_delay_and_the_cap_removes_it() -> None:
    """The phase-1 rule raises trailing padding when padding is free; the capped rule does not."""
    results = audit([ARMS["uniform"], ARMS["signed (uncapped, phase 1)"], ARMS["signed"]], SCENARIOS["padding-free"], updates=UPDATES, seeds=SEEDS, episodes=600)
    uncapped, _ = _paired_excess(results, "signed (uncapped, phase 1)", "trailing_padding_rate")
    capped, se = _paired_excess(results, "signed", "trailing_padding_rate")
    assert uncapped > 0.1
    assert capped <= 2 * se + 0.02
