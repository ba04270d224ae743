"""Per-trace measures of an experiment's evaluations, and where training put its credit.

One `TraceMeasure` per evaluated trace keeps what the report aggregates with intervals:
correctness, CoT tokens, useful steps (insights) and the tokens in units the reviewer labels
irrelevant. The traces and reviews come from the one evaluation path (`dca.evaluate`), whose
``auto`` reviewer (`dca.review.reviewer_for`) is the oracle where problems have a known
structure and the reference reviewer on GSM8K (reference solution); ``irrelevant share`` is
therefore the oracle's on synthetic sets, as the issue asks, and the reference reviewer's on GSM8K.

Definitions are `dca.evaluate.set_figures`'s, from the same functions: *tokens per insight* is
completion tokens ÷ useful steps (`dca.measures.useful_steps`; traces with at least one);
*CoT tokens* are the tokens before the answer statement (`dca.continuation.split_cot`); the
irrelevant share's parts are `dca.measures.labelled_tokens`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..continuation import split_cot
from ..files import read_jsonl
from ..measures import labelled_tokens, useful_steps
from ..records import USEFUL_CONTRIBUTIONS, Credit, Review, Trace


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


def trace_measures(traces: list[Trace], reviews: list[Review], count_tokens: Callable[[str], int]) -> list[TraceMeasure]:
    """One `TraceMeasure` per trace (its review, if any, found by trace id)."""
    by_trace = {r.trace_id: r for r in reviews}
    measures = []
    for trace in traces:
        review = by_trace.get(trace.id)
        ok = review is not None and review.status == "ok"
        useful = labelled = irrelevant = 0
        if ok:
            useful = useful_steps(review)
            labelled, irrelevant = labelled_tokens(review, count_tokens)
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
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_credit_placement(run_dir: Path) -> dict[str, float | int | None] | None:
    """`credit_placement` of a GRPO run directory's reviews and credits (None: no credits)."""
    if not (run_dir / "credits.jsonl").exists() or not (run_dir / "reviews.jsonl").exists():
        return None
    return credit_placement(read_jsonl(run_dir / "reviews.jsonl", Review), read_jsonl(run_dir / "credits.jsonl", Credit))
