"""Reviewers: each reads a trace's units and returns a `Review` of its causal structure."""

from __future__ import annotations

from typing import Protocol

from ..records import Problem, Review, Unit
from .oracle import OracleReviewer


class Reviewer(Protocol):
    """The interface every reviewer implements: a name and one review per completion.

    `units` are `dca.segment.segment(trace_completion)`; the returned Review's steps refer to
    them by index. A reviewer may raise; callers turn that into a failed review.
    """

    name: str

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review: ...


__all__ = ["OracleReviewer", "Reviewer"]
