"""Reviewers: each reads a trace's units and returns a `Review` of its causal structure.

- `OracleReviewer` (synthetic problems) and `ReferenceReviewer` (GSM8K) are programmatic;
  `CounterfactualReviewer` measures each unit's causal effect with the policy model itself;
  `NoisyReviewer` flips a seeded share of another reviewer's labels (tests, demos);
- LLM reviewers answer the versioned review protocol (`protocol`) through a backend
  (`backends`: OpenAI-compatible, Anthropic; `dca.llm.hf`: a Hugging Face model, decoding
  under the review answer's grammar that `grammar` builds);
- every reviewer is built by one registry (`registry.REGISTRY`, keyed by backend name:
  oracle, reference, noisy, counterfactual, hf, openai, anthropic) from a `ReviewerSpec`
  declared in YAML (`config.load_reviewers`); each implements `Reviewer` (``review`` and the
  batched, asynchronous ``review_many``), and `review_batch` runs several over a batch
  (the trainer's generation batch, ``dca review``, ``dca eval``);
- LLM reviewers call their model through `dca.llm.LLMClient` (SQLite cache, retries,
  rate limits, concurrency, cost).
"""

from __future__ import annotations

from ..llm.cache import ReviewCache
from .base import Reviewer, ReviewItem, failed_review, review_all, review_batch, review_traces
from .config import ReviewerSpec, load_reviewers
from .counterfactual import CounterfactualConfig, CounterfactualReviewer
from .noisy import NoisyReviewer
from ..domains import OracleReviewer
from .protocol import PROTOCOL_VERSION, InvalidAnswer, build_messages, parse_answer
from .reference import ReferenceReviewer
from .registry import REGISTRY, BuildContext, build_reviewer, build_reviewers, builtin_spec, close_reviewers, resolve_reviewer_name, reviewer_for
from .llm_reviewer import LLMReviewer, ReviewerStats
from .runner import ReviewRunner, default_cache_path

__all__ = [
    "PROTOCOL_VERSION",
    "REGISTRY",
    "BuildContext",
    "LLMReviewer",
    "build_reviewer",
    "build_reviewers",
    "builtin_spec",
    "close_reviewers",
    "failed_review",
    "review_all",
    "review_batch",
    "review_traces",
    "resolve_reviewer_name",
    "reviewer_for",
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
    "build_messages",
    "default_cache_path",
    "load_reviewers",
    "parse_answer",
]
