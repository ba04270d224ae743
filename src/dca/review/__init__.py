"""Reviewers: each reads a trace's units and returns a `Review` of its causal structure.

- `OracleReviewer` (synthetic problems) and `ReferenceReviewer` (GSM8K) are programmatic;
  `CounterfactualReviewer` measures each unit's causal effect with the policy model itself;
  `NoisyReviewer` flips a seeded share of another reviewer's labels (tests, demos);
- LLM reviewers answer the versioned review protocol (`protocol`) through a backend
  (`backends`: OpenAI-compatible, Anthropic; `local`: a Hugging Face model with
  grammar-constrained decoding);
- reviewers are declared in YAML (`config.load_reviewers`) and run by `ReviewRunner`
  (concurrency, rate limits, retries, SQLite cache, cost); `RunnerReviewer` puts any of them
  behind the synchronous `Reviewer` protocol the trainer calls.
"""

from __future__ import annotations

from .base import Reviewer
from .cache import ReviewCache
from .config import ReviewerSpec, load_reviewers
from .counterfactual import CounterfactualConfig, CounterfactualReviewer
from .noisy import NoisyReviewer
from .oracle import OracleReviewer
from .protocol import PROTOCOL_VERSION, InvalidAnswer, build_messages, parse_answer
from .reference import ReferenceReviewer
from .runner import ReviewItem, ReviewerStats, ReviewRunner, RunnerReviewer, default_cache_path

__all__ = [
    "PROTOCOL_VERSION",
    "CounterfactualConfig",
    "CounterfactualReviewer",
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
