"""The LLM transport: one client (`client.LLMClient`: cache, limits, retries, cost) in front of
provider backends (`backends`: OpenAI-compatible, Anthropic; `hf`: a local Hugging Face model
with optional grammar-constrained decoding) and an SQLite answer cache (`cache`).

It knows nothing of reviews, domains or training: callers pass messages, a namespace for the
cache key and, optionally, a JSON schema or a decoding grammar.
"""

from __future__ import annotations

from .client import LLMClient, RateLimiter, backoff_delay, run_sync
from .spec import LLM_BACKENDS, CallError, CallStats, Generation, Grammar, LLMBackend, LLMCallFailed, LLMSpec, Price

__all__ = [
    "LLM_BACKENDS",
    "CallError",
    "CallStats",
    "Generation",
    "Grammar",
    "LLMBackend",
    "LLMCallFailed",
    "LLMClient",
    "LLMSpec",
    "Price",
    "RateLimiter",
    "backoff_delay",
    "run_sync",
]
