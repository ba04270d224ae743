"""Reviewers: each reads a trace's units and returns a `Review` of its causal structure.

- `OracleReviewer` (synthetic problems) and `ReferenceReviewer` (GSM8K) are programmatic;
- LLM reviewers answer the versioned review protocol (`protocol`) through a backend
  (`backends`: OpenAI-compatible, Anthropic);
- reviewers are declared in YAML (`config.load_reviewers`) and run by `ReviewRunner`
  (concurrency, rate limits, retries, SQLite cache, cost); `RunnerReviewer` puts any of them
  behind the synchronous `Reviewer` protocol the trainer calls.
"""

from __future__ import annotations

from typing import Protocol

from ..records import Problem, Review, Unit
from .oracle import OracleReviewer
from .reference import ReferenceReviewer
from .noisy import NoisyReviewer


class Reviewer(Protocol):
    """The interface every reviewer implements: a name and one review per completion.

    `units` are `dca.segment.segment(trace_completion)`; the returned Review's steps refer to
    them by index. A reviewer may raise; callers turn that into a failed review.
    """

    name: str

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review: ...


# The review protocol, LLM backends and the runner (issue 3); imported after `Reviewer` so
# that modules below may refer to it.
from .cache import ReviewCache  # noqa: E402
from .config import ReviewerSpec, load_reviewers  # noqa: E402
from .protocol import PROTOCOL_VERSION, InvalidAnswer, build_messages, parse_answer  # noqa: E402
from .runner import ReviewItem, ReviewRunner, ReviewerStats, RunnerReviewer, default_cache_path  # noqa: E402

__all__ = [
    "PROTOCOL_VERSION",
    "InvalidAnswer",
    "NoisyReviewer",
    "OracleReviewer",
    "ReferenceReviewer",
    "ReviewCache",
    "ReviewItem",
    "ReviewRunner",
    "Reviewer",
    "ReviewerSpec",
    "ReviewerStats",
    "RunnerReviewer",
    "build_messages",
    "default_cache_path",
    "load_reviewers",
    "parse_answer",
]
