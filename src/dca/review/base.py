"""The interface every reviewer implements, and the one way callers run reviewers over a batch.

A reviewer has a ``name`` and

- ``review(problem, trace_completion, units, *, trace_id) -> Review``: one review, synchronous;
- ``async review_many(items) -> list[Review]``: one review per `ReviewItem`, in order, as
  concurrently as the reviewer allows (LLM reviewers: every call at once, within their
  client's concurrency and rate limits; programmatic reviewers: one after another, inline).

Every reviewer `dca.review.registry` builds implements both and never raises from
``review_many``: a failure is a `Review` with ``status="failed"`` (its completion then gets
uniform credit in training). `review_batch` runs several reviewers over one batch (the
trainer's generation batch, ``dca review``'s traces, ``dca eval``'s and the experiment's
traces through `review_traces`): the inline
reviewers first (CPU work that would otherwise stall the event loop while calls are in
flight), then every LLM reviewer's calls together. It also accepts plain objects that have
only ``review`` (tests, benchmarks), and turns an exception into a failed review.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from ..llm import run_sync
from ..records import Problem, Review, Trace, Unit
from ..redact import redact
from ..segment import segment

__all__ = ["Reviewer", "ReviewItem", "failed_review", "review_all", "review_batch", "review_traces"]


@dataclass(kw_only=True)
class ReviewItem:
    """One trace to review, with its problem and units (`dca.segment.segment` of the completion)."""

    problem: Problem
    trace: Trace
    units: list[Unit]


@runtime_checkable
class Reviewer(Protocol):
    """A name, one review per completion, and a batched asynchronous form.

    `units` are `dca.segment.segment(trace_completion)`; the returned Review's steps refer to
    them by index. ``review`` may raise (callers turn that into a failed review);
    ``review_many`` never raises.
    """

    name: str

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review: ...

    async def review_many(self, items: Sequence[ReviewItem]) -> list[Review]: ...


def failed_review(name: str, item: ReviewItem, kind: str, error: str, *, usage: dict | None = None, metadata: dict | None = None) -> Review:
    """A failed review of `item` (every unit unreviewed); ``metadata["failure"]`` is `kind`. The
    error is redacted (`dca.redact`): it may quote what a server echoed back."""
    review = Review.failed(item.trace.id, name, item.units, redact(f"{kind}: {error}")[:1000], metadata={**(metadata or {}), "failure": kind})
    review.usage = dict(usage or {})
    return review


def _is_inline(reviewer: Any) -> bool:
    return getattr(reviewer, "inline", True) or not hasattr(reviewer, "review_many")


def _review_one(reviewer: Any, item: ReviewItem) -> Review:
    name = getattr(reviewer, "name", type(reviewer).__name__)
    try:
        return reviewer.review(item.problem, item.trace.completion, item.units, trace_id=item.trace.id)
    except Exception as e:  # noqa: BLE001 - any reviewer failure is data, not a crash
        return failed_review(name, item, "reviewer_error", f"{type(e).__name__}: {e}")


async def _many(reviewer: Any, items: Sequence[ReviewItem]) -> list[Review]:
    if not hasattr(reviewer, "review_many"):
        return [_review_one(reviewer, item) for item in items]
    try:
        reviews = await reviewer.review_many(items)
        if len(reviews) != len(items):
            raise RuntimeError(f"review_many returned {len(reviews)} reviews for {len(items)} items")
        return reviews
    except Exception as e:  # noqa: BLE001 - a reviewer failure is data, never a crash
        name = getattr(reviewer, "name", type(reviewer).__name__)
        return [failed_review(name, item, "reviewer_error", f"{type(e).__name__}: {e}") for item in items]


async def review_all(
    reviewers: Sequence[Any], items: Sequence[ReviewItem], *, on_review: Callable[[Review], Any] | None = None
) -> list[list[Review]]:
    """Every item by every reviewer: ``result[r][i]`` is reviewer r's review of item i.

    Inline reviewers run first, one after another; then all LLM reviewers' calls together.
    """
    results: list[list[Review] | None] = [None] * len(reviewers)

    async def run(index: int) -> None:
        reviews = await _many(reviewers[index], items)
        results[index] = reviews
        if on_review is not None:
            for review in reviews:
                on_review(review)

    for index, reviewer in enumerate(reviewers):
        if _is_inline(reviewer):
            await run(index)
    await asyncio.gather(*(run(i) for i, reviewer in enumerate(reviewers) if not _is_inline(reviewer)))
    return results  # type: ignore[return-value]


def review_batch(
    reviewers: Sequence[Any], items: Sequence[ReviewItem], *, on_review: Callable[[Review], Any] | None = None
) -> list[list[Review]]:
    """`review_all` from synchronous code, on the process's background event loop
    (`dca.llm.run_sync`: LLM clients keep their connections and limits across batches, and a
    caller that runs its own event loop, a notebook say, is not disturbed)."""
    return run_sync(review_all(reviewers, items, on_review=on_review))


def review_traces(reviewers: Sequence[Any], traces: Sequence[Trace], problems: dict[str, Problem]) -> list[Review]:
    """Every trace (its units: `dca.segment.segment` of the completion) by every reviewer,
    through `review_batch`: the first reviewer's reviews in trace order, then the next's. A
    failed review is a record with ``metadata["failure"]``, never an exception."""
    items = [ReviewItem(problem=problems[t.problem_id], trace=t, units=segment(t.completion)) for t in traces]
    return [review for reviews in review_batch(reviewers, items) for review in reviews]
