"""The interface every reviewer implements."""

from __future__ import annotations

from typing import Protocol

from ..records import Problem, Review, Unit


class Reviewer(Protocol):
    """A name and one review per completion.

    `units` are `dca.segment.segment(trace_completion)`; the returned Review's steps refer to
    them by index. A reviewer may raise; callers turn that into a failed review.
    """

    name: str

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review: ...
