"""Reviewing a traces file (`dca review`): load traces and problems, run every reviewer, sum up.

    dca review --traces runs/demo/traces.jsonl --reviewers reviewers.yaml --out reviews.jsonl

Problems come from ``--problems`` or, by default, the ``problems.jsonl`` beside the traces
(a run directory holds both). Reviews are written in (trace, reviewer) order, one per pair,
failed reviews included; the summary counts reviews done, served from the cache, failed by
reason, tokens and cost per reviewer and for the run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..files import read_records
from ..records import Problem, Review, Trace
from ..segment import segment
from ..llm.cache import ReviewCache
from .config import ReviewerSpec
from .llm_reviewer import ReviewItem, ReviewerStats
from .runner import ReviewRunner

__all__ = ["load_review_items", "review_items", "summary"]


def load_review_items(traces_path: str | Path, problems_path: str | Path | None = None, *, limit: int | None = None) -> list[ReviewItem]:
    """Traces with their problems and units; a trace whose problem is missing is a UserError."""
    traces_path = Path(traces_path)
    traces: list[Trace] = read_records(traces_path, Trace, what="traces", hint="write one with `dca rollout --out`")
    if limit is not None:
        traces = traces[:limit]
    if not traces:
        raise UserError(f"traces file {traces_path} holds no traces")
    problems_path = Path(problems_path) if problems_path else traces_path.with_name("problems.jsonl")
    problems: list[Problem] = read_records(problems_path, Problem, what="problems", hint="pass --problems with the file the traces were sampled from")
    by_id = {p.id: p for p in problems}
    missing = [t.problem_id for t in traces if t.problem_id not in by_id]
    if missing:
        raise UserError(f"{len(missing)} trace(s) refer to problems not in {problems_path} (first: {missing[0]}); pass the right --problems")
    return [ReviewItem(problem=by_id[t.problem_id], trace=t, units=segment(t.completion)) for t in traces]


def review_items(
    items: list[ReviewItem],
    specs: list[ReviewerSpec],
    *,
    cache: ReviewCache | None,
    on_review: Callable[[Review], Any] | None = None,
) -> tuple[list[Review], dict[str, ReviewerStats]]:
    """Run every reviewer over every item (asyncio inside); never raises for a failed review."""

    async def run() -> tuple[list[Review], dict[str, ReviewerStats]]:
        runner = ReviewRunner(specs, cache=cache)
        try:
            runner.prepare()
            reviews = await runner.review_all(items, on_review=on_review)
        finally:
            await runner.aclose()
        return reviews, runner.stats

    return asyncio.run(run())


def summary(stats: dict[str, ReviewerStats], traces: int) -> dict[str, Any]:
    """Per-reviewer and total figures, JSON-ready."""
    rows = {}
    for name, s in stats.items():
        rows[name] = {
            "reviews": s.reviews,
            "ok": s.ok,
            "failed": s.failed,
            "failed_by_reason": dict(sorted(s.failed_by_reason.items())),
            "new_calls": s.answered_calls,
            "cached_calls": s.cached_calls,
            "requests": s.requests,
            "retries": s.retries,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cached_input_tokens": s.cached_input_tokens,
            # Per new call, as `dca review --estimate` gives them (repair turns fold into their review's call).
            "input_tokens_per_call": round(s.input_tokens / s.answered_calls, 1) if s.answered_calls else 0.0,
            "output_tokens_per_call": round(s.output_tokens / s.answered_calls, 1) if s.answered_calls else 0.0,
            "cost_usd": round(s.cost, 6),
        }
    total: dict[str, Any] = {"traces": traces}
    for field in ("reviews", "ok", "failed", "new_calls", "cached_calls", "requests", "retries", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        total[field] = sum(r[field] for r in rows.values())
    reasons: dict[str, int] = {}
    for r in rows.values():
        for reason, n in r["failed_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    total["failed_by_reason"] = dict(sorted(reasons.items()))
    total["cost_usd"] = round(total["cost_usd"], 6)
    return {"reviewers": rows, "total": total}
