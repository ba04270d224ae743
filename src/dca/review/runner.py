"""The runner behind ``dca review``: declared reviewers (built by `dca.review.registry`) over many
traces, concurrently, cached, with per-reviewer statistics (`ReviewerStats`), never able to
crash the run that uses them. The reviewers themselves: `dca.review.llm_reviewer` (LLM
reviewers), `dca.review.registry` (every kind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable
from ..files import cache_dir
from ..records import Review
from .base import ReviewItem, review_all
from ..llm.cache import ReviewCache
from .config import ReviewerSpec
from .llm_reviewer import LLMReviewer, ReviewerStats
from .registry import BuildContext, build_reviewers

__all__ = ["LLMReviewer", "ReviewItem", "ReviewRunner", "ReviewerStats", "default_cache_path"]

def default_cache_path() -> Path:
    """``review-cache.sqlite`` in the cache directory (`dca.files.cache_dir`)."""
    return cache_dir() / "review-cache.sqlite"


# ---------------------------------------------------------------------------------------------
# dca review


class ReviewRunner:
    """Declared reviewers (built by `dca.review.registry`) over review items, with per-reviewer stats.

    Use from async code (``await runner.review_all(items)``, ``await runner.aclose()``), or from
    synchronous code through `dca.llm.run_sync`.
    """

    def __init__(self, specs: list[ReviewerSpec], *, cache: ReviewCache | None = None, backends: dict | None = None, context=None):
        """`backends` overrides the LLM backend built for a reviewer name (tests of paid APIs
        pass a backend bound to a local server); `context` is a `BuildContext` to build with."""
        self.specs = {s.name: s for s in specs}
        self.context = context or BuildContext(cache=cache, backends=dict(backends or {}))
        self.stats = {s.name: ReviewerStats() for s in specs}
        self.reviewers: dict[str, Any] = {}

    def prepare(self) -> None:
        """Build every reviewer now, so a missing API key is a `UserError` before any work."""
        if not self.reviewers:
            self.reviewers = dict(zip(self.specs, build_reviewers(list(self.specs.values()), self.context)))

    async def aclose(self) -> None:
        for reviewer in self.context.built.values():
            if hasattr(reviewer, "aclose"):
                await reviewer.aclose()
        self.reviewers.clear()
        self.context.built.clear()

    async def review_all(self, items: Iterable[ReviewItem], *, on_review: Callable[[Review], Any] | None = None) -> list[Review]:
        """Every item by every reviewer; reviews come back in (item, reviewer) order."""
        self.prepare()
        items = list(items)
        names = list(self.specs)

        def counted(review: Review) -> None:
            if review.reviewer in self.stats:
                self.stats[review.reviewer].add(review)
            if on_review is not None:
                on_review(review)

        by_reviewer = await review_all([self.reviewers[n] for n in names], items, on_review=counted)
        return [by_reviewer[r][i] for i in range(len(items)) for r in range(len(names))]

    async def review(self, name: str, item: ReviewItem) -> Review:
        """One review by the named reviewer; failures come back as failed reviews."""
        self.prepare()
        (review,) = (await review_all([self.reviewers[name]], [item]))[0]
        self.stats[name].add(review)
        return review
