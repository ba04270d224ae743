"""The counterfactual reviewer: importance and labels from a stubbed answer distribution, and a
real (tiny) model behind the same interface."""

from __future__ import annotations

import pytest

from dca.continuation import ContinuationRequest, FunctionContinuationEngine, HFContinuationEngine
from dca.records import Problem
from dca.review import CounterfactualConfig, CounterfactualReviewer, Reviewer
from dca.segment import segment

COMPLETION = "Ava has 5 apples. She buys 3 more, so 5 + 3 = 8. Wait, maybe 9. Then 8 * 2 = 16.\nAnswer: 16"
PROBLEM = Problem(id="p", source="synthetic", question="q", answer="16")


def stub(request: ContinuationRequest, sample: int) -> str:
    """The answer distribution: a prefix with "Wait" leads to 9; one with "= 8" (and no "Wait")
    always to 16; any other prefix to 16 for half of the samples."""
    if "Wait" in request.prefix:
        answer = 9
    elif "= 8" in request.prefix:
        answer = 16
    else:
        answer = 16 if sample % 2 == 0 else 9
    return f" Something else happens here.\nAnswer: {answer}"


def review(config: CounterfactualConfig, generate=stub):
    reviewer = CounterfactualReviewer(FunctionContinuationEngine(generate), config, render_prompt=lambda p: "PROMPT|")
    units = segment(COMPLETION)
    return units, reviewer.review(PROBLEM, COMPLETION, units, trace_id="t")


def test_resampling_importance_and_labels():
    units, result = review(CounterfactualConfig(samples=4, mode="resample", threshold=0.25))
    assert [u.text for u in units][:4] == ["Ava has 5 apples.", " She buys 3 more, so 5 + 3 = 8.", " Wait, maybe 9.", " Then 8 * 2 = 16."]
    # acc(k) for prefixes of 0..4 units: 0.5, 0.5, 1, 0, 0
    assert result.metadata["accuracy_by_prefix"] == [0.5, 0.5, 1.0, 0.0, 0.0]
    assert result.metadata["importance"] == [0.0, 0.5, -1.0, 0.0]
    assert result.unit_contributions() == ["irrelevant", "essential", "error", "irrelevant", "solved"]
    assert [s.function for s in result.steps] == ["other", "computation", "other", "computation", "conclusion"]
    assert result.status == "ok" and result.usage["continuations"] == 5 * 4
    assert result.usage["generated_tokens"] > 0
    assert result.metadata["settings"]["samples"] == 4


def test_threshold_is_configurable():
    _, result = review(CounterfactualConfig(samples=4, mode="resample", threshold=0.6))
    assert result.unit_contributions()[:4] == ["irrelevant", "irrelevant", "error", "irrelevant"]


def test_counterfactual_mode_drops_resamples_that_repeat_the_unit():
    def repeats_unit_one(request, sample):
        # From the 1-unit prefix, samples 0 and 1 rewrite unit 1 (and reach 16), 2 and 3 say
        # something else (and reach 9): only the dissimilar ones count as removing unit 1.
        if request.prefix == "Ava has 5 apples.":
            if sample < 2:
                return " She buys 3 more, so 5 + 3 = 8.\nAnswer: 16"
            return " She eats one apple now.\nAnswer: 9"
        return stub(request, sample)

    _, result = review(CounterfactualConfig(samples=4, mode="counterfactual"), repeats_unit_one)
    assert result.metadata["dissimilar_resamples"][1] == 2
    assert result.metadata["importance"][1] == 1.0  # 1.0 kept minus 0.0 over dissimilar resamples
    _, resample = review(CounterfactualConfig(samples=4, mode="resample"), repeats_unit_one)
    assert resample.metadata["importance"][1] == 0.5


def test_failures_and_bad_config():
    def broken(request, sample):
        raise RuntimeError("boom")

    _, result = review(CounterfactualConfig(samples=2), broken)
    assert result.status == "failed" and "boom" in result.error and result.usage["continuations"] == 5 * 2
    reviewer = CounterfactualReviewer(FunctionContinuationEngine(stub), CounterfactualConfig(samples=2))
    result = reviewer.review(PROBLEM, COMPLETION, segment(COMPLETION), trace_id="t")
    assert result.status == "failed" and "prompt" in result.error
    with pytest.raises(ValueError):
        CounterfactualConfig(threshold=0)
    with pytest.raises(ValueError):
        CounterfactualConfig(samples=3, temperature=0)


def test_on_a_tiny_model(tiny_model_dir):
    from dca.model import load_model
    from dca.rollout import render_prompt

    model, tokenizer = load_model(str(tiny_model_dir))
    config = CounterfactualConfig(samples=2, max_new_tokens=6, temperature=1.0, seed=3)

    def run():
        reviewer: Reviewer = CounterfactualReviewer(HFContinuationEngine(model, tokenizer), config, render_prompt=lambda p: render_prompt(tokenizer, p))
        units = segment(COMPLETION)
        return reviewer.review(PROBLEM, COMPLETION, units, trace_id="t")

    first, second = run(), run()
    assert first.status == "ok", first.error
    assert len(first.metadata["importance"]) == 4 and first.usage["continuations"] == 10
    assert 0 < first.usage["generated_tokens"] <= 10 * 6
    # every unit is covered by exactly one step
    assert all(label is not None for label in first.unit_contributions())
    assert first.metadata == second.metadata  # seeded: the same review twice
