"""Per-trace measures of an experiment's evaluations, and the reviewer that labels them.

One `TraceMeasure` per evaluated trace keeps what the report aggregates with intervals:
correctness, CoT tokens, useful steps (insights) and the tokens in units the reviewer labels
irrelevant. The reviewer is the oracle on synthetic problems (known structure) and the
reference reviewer on GSM8K (reference solution); ``irrelevant share`` is therefore the
oracle's on synthetic sets, as the issue asks, and the reference reviewer's on GSM8K.

Definitions follow `dca.evaluate`: *tokens per insight* is completion tokens ÷ steps with a
`USEFUL_CONTRIBUTIONS` label (traces with at least one); *CoT tokens* are the tokens before the
answer statement (`dca.continuation.split_cot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..continuation import split_cot
from ..records import USEFUL_CONTRIBUTIONS, Problem, Review, Trace
from ..segment import segment


@dataclass(kw_only=True)
class TraceMeasure:
    """What one evaluated trace contributes to an arm's figures."""

    problem_id: str
    correct: bool
    completion_tokens: int
    cot_tokens: int
    useful_steps: int
    """Steps the reviewer labels with a useful contribution (0 when the review failed)."""
    labelled_tokens: int
    """Tokens of the units the reviewer labelled (the denominator of the irrelevant share)."""
    irrelevant_tokens: int
    """Tokens of the units labelled ``irrelevant``."""
    review_ok: bool


def auto_reviewer(problems: list[Problem]):
    """The oracle where every problem has a known structure, else the reference reviewer where
    every problem has a reference solution, else None."""
    from ..review import OracleReviewer, ReferenceReviewer

    if problems and all(p.operations for p in problems):
        return OracleReviewer()
    if problems and all(p.reference_steps for p in problems):
        return ReferenceReviewer()
    return None


def review_traces(reviewer, traces: list[Trace], problems: dict[str, Problem]) -> list[Review]:
    """One review per trace; a review that raises becomes a failed review record."""
    reviews = []
    for trace in traces:
        units = segment(trace.completion)
        try:
            review = reviewer.review(problems[trace.problem_id], trace.completion, units, trace_id=trace.id)
        except Exception as e:  # a failed review is a record, never a crash
            review = Review(trace_id=trace.id, reviewer=getattr(reviewer, "name", "?"), units=units, status="failed", error=f"{type(e).__name__}: {e}")
        reviews.append(review)
    return reviews


def trace_measures(traces: list[Trace], reviews: list[Review], count_tokens: Callable[[str], int]) -> list[TraceMeasure]:
    by_trace = {r.trace_id: r for r in reviews}
    measures = []
    for trace in traces:
        review = by_trace.get(trace.id)
        ok = review is not None and review.status == "ok"
        useful = labelled = irrelevant = 0
        if ok:
            useful = sum(step.contribution in USEFUL_CONTRIBUTIONS for step in review.steps)
            for unit, label in zip(review.units, review.unit_contributions()):
                if label is None:
                    continue
                n = count_tokens(unit.text)
                labelled += n
                irrelevant += n if label == "irrelevant" else 0
        measures.append(
            TraceMeasure(
                problem_id=trace.problem_id,
                correct=trace.outcome == "correct",
                completion_tokens=count_tokens(trace.completion),
                cot_tokens=count_tokens(split_cot(trace.completion).text),
                useful_steps=useful,
                labelled_tokens=labelled,
                irrelevant_tokens=irrelevant,
                review_ok=ok,
            )
        )
    return measures


def summarize_measures(measures: list[TraceMeasure]) -> dict[str, float | int | None]:
    """Point figures of one set of measures (the report adds intervals)."""
    n = len(measures)
    with_insight = [m for m in measures if m.useful_steps]
    labelled = sum(m.labelled_tokens for m in measures)
    return {
        "traces": n,
        "accuracy": sum(m.correct for m in measures) / n if n else None,
        "mean_cot_tokens": sum(m.cot_tokens for m in measures) / n if n else None,
        "tokens_per_insight": sum(m.completion_tokens / m.useful_steps for m in with_insight) / len(with_insight) if with_insight else None,
        "irrelevant_share": sum(m.irrelevant_tokens for m in measures) / labelled if labelled else None,
        "reviews_failed": sum(not m.review_ok for m in measures),
    }
