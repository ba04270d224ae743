"""Tests for dca.review.NoisyReviewer: seeded label flips on another reviewer's review."""

from __future__ import annotations

import pytest

from dca.records import CONTRIBUTIONS, Problem, Review, Step
from dca.review import NoisyReviewer, OracleReviewer
from dca.segment import segment
from gold_traces import gold_traces

TEXT = "Ava has 3 apples. She buys 4 more. 3 + 4 = 7. The sky is blue. So 7.\nAnswer: 7"
UNITS = segment(TEXT)
PROBLEM = Problem(id="p", source="test", question="?", answer="7")


class FixedReviewer:
    """Two steps over the first four units, with a dependency; the rest uncovered."""

    name = "fixed"

    def review(self, problem, trace_completion, units, *, trace_id):
        steps = [
            Step(index=0, first_unit=0, last_unit=1, function="given_fact", contribution="indirect", reason="facts"),
            Step(index=1, first_unit=2, last_unit=3, function="computation", contribution="essential", depends_on=[0], reason="sum"),
        ]
        return Review(trace_id=trace_id, reviewer=self.name, units=units, steps=steps)


class FailingReviewer:
    name = "failing"

    def review(self, problem, trace_completion, units, *, trace_id):
        return Review(trace_id=trace_id, reviewer=self.name, units=units, status="failed", error="no answer")


def noisy_review(flip_rate: float, seed: int = 0, trace_id: str = "t", inner=None) -> Review:
    return NoisyReviewer(inner or FixedReviewer(), flip_rate, seed=seed).review(PROBLEM, TEXT, UNITS, trace_id=trace_id)


def test_no_noise_is_the_inner_review():
    inner = FixedReviewer().review(PROBLEM, TEXT, UNITS, trace_id="t")
    review = noisy_review(0.0)
    assert review.steps == inner.steps and review.reviewer == "noisy-fixed-0"
    assert review.metadata["flipped_units"] == []


def test_full_noise_changes_every_covered_unit_and_keeps_uncovered_ones():
    inner = FixedReviewer().review(PROBLEM, TEXT, UNITS, trace_id="t").unit_contributions()
    noisy = noisy_review(1.0).unit_contributions()
    assert all(a != b for a, b in zip(inner[:4], noisy[:4]))
    assert all(label in CONTRIBUTIONS for label in noisy[:4])
    assert noisy[4:] == inner[4:] == [None] * (len(UNITS) - 4)


def test_steps_stay_valid_and_keep_dependencies():
    for seed in range(20):
        review = noisy_review(0.5, seed=seed)
        assert [s.index for s in review.steps] == list(range(len(review.steps)))
        covered = [u for s in review.steps for u in range(s.first_unit, s.last_unit + 1)]
        assert covered == [0, 1, 2, 3]
        for s in review.steps:
            assert all(d < s.index for d in s.depends_on)
            if s.first_unit >= 2:  # pieces of the computation step depend on the fact pieces
                assert s.depends_on == [t.index for t in review.steps if t.last_unit <= 1]
            flipped = any(u in review.metadata["flipped_units"] for u in range(s.first_unit, s.last_unit + 1))
            assert ("[noise: flipped from" in s.reason) == flipped


def test_seeded_by_seed_and_trace_id_only():
    assert noisy_review(0.5, seed=1).steps == noisy_review(0.5, seed=1).steps
    variants = {tuple(s.contribution for s in noisy_review(0.5, seed=seed).steps) for seed in range(10)}
    assert len(variants) > 1
    by_trace = {tuple(s.contribution for s in noisy_review(0.5, trace_id=f"t{i}").steps) for i in range(10)}
    assert len(by_trace) > 1


def test_flip_share_matches_the_rate_on_many_units():
    golds = gold_traces(60, seed=2)
    noisy = NoisyReviewer(OracleReviewer(), 0.3, seed=4)
    flipped = total = 0
    for g in golds:
        units = segment(g.trace.completion)
        review = noisy.review(g.problem, g.trace.completion, units, trace_id=g.trace.id)
        flipped += len(review.metadata["flipped_units"])
        total += len(units)
    assert 0.25 < flipped / total < 0.35


def test_failed_inner_review_is_passed_on():
    review = noisy_review(0.5, inner=FailingReviewer())
    assert review.status == "failed" and review.error == "no answer" and review.reviewer == "noisy-failing-0.5"


def test_rate_is_validated():
    with pytest.raises(ValueError, match="flip_rate"):
        NoisyReviewer(FixedReviewer(), 1.5)
