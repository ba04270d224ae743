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
from pathlib import Path
from typing import Callable

from ..continuation import split_cot
from ..records import USEFUL_CONTRIBUTIONS, Credit, Problem, Review, Trace
from ..files import read_jsonl
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


#: Unit labels a bad completion's penalty should land on (the ``signed`` policy's default blame).
BLAMED_CONTRIBUTIONS = ("error", "failed_attempt")


def credit_placement(reviews: list[Review], credits: list[Credit]) -> dict[str, float | int | None]:
    """Where a run's training advantages landed, by the reviewer's unit labels.

    Over completions with a positive advantage: the share of their advantage (summed over the
    units' tokens, `Credit.unit_advantages`) on units labelled ``irrelevant`` and on useful
    units; over those with a negative one: the share on blamed units (``error``,
    ``failed_attempt``) and on useful units. Under uniform credit (plain GRPO) the shares are
    the labels' token shares; a credit policy that follows the reviews moves them. Traces
    without a usable review of the credited units are left out (counted in ``unlabelled``).
    With several reviews of a trace the first ok one labels it.
    """
    labels: dict[str, list[str | None]] = {}
    for review in reviews:
        if review.status == "ok" and review.trace_id not in labels:
            labels[review.trace_id] = review.unit_contributions()
    sums = {"pos": 0.0, "pos_irrelevant": 0.0, "pos_useful": 0.0, "neg": 0.0, "neg_blamed": 0.0, "neg_useful": 0.0}
    counts = {"positive_traces": 0, "negative_traces": 0, "unlabelled": 0}
    for credit in credits:
        if credit.sequence_advantage == 0:
            continue
        units = labels.get(credit.trace_id)
        if units is None or len(units) != len(credit.unit_advantages):
            counts["unlabelled"] += 1
            continue
        side = "pos" if credit.sequence_advantage > 0 else "neg"
        counts["positive_traces" if side == "pos" else "negative_traces"] += 1
        for label, value in zip(units, credit.unit_advantages):
            sums[side] += value
            if label in USEFUL_CONTRIBUTIONS:
                sums[f"{side}_useful"] += value
            if side == "pos" and label == "irrelevant":
                sums["pos_irrelevant"] += value
            if side == "neg" and label in BLAMED_CONTRIBUTIONS:
                sums["neg_blamed"] += value

    def share(part: str, whole: str) -> float | None:
        return sums[part] / sums[whole] if sums[whole] else None

    return {
        "positive_on_irrelevant": share("pos_irrelevant", "pos"),
        "positive_on_useful": share("pos_useful", "pos"),
        "negative_on_blamed": share("neg_blamed", "neg"),
        "negative_on_useful": share("neg_useful", "neg"),
        **counts,
    }


def read_rows(path: Path) -> list[dict]:
    """The rows of a JSON-lines file of plain dicts (curve, steps, metrics); [] when it is missing."""
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_credit_placement(run_dir: Path) -> dict[str, float | int | None] | None:
    """`credit_placement` of a GRPO run directory's reviews and credits (None: no credits)."""
    if not (run_dir / "credits.jsonl").exists() or not (run_dir / "reviews.jsonl").exists():
        return None
    return credit_placement(read_jsonl(run_dir / "reviews.jsonl", Review), read_jsonl(run_dir / "credits.jsonl", Credit))
