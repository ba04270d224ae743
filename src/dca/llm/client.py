"""The one LLM client: every call the project makes to a language model goes through `LLMClient`.

It owns, once for every caller (reviews, ``dca edit``'s LLM bridges, and later problem
generation, LLM judges and dialogue reviews):

- the **cache** (`dca.llm.cache.ReviewCache`, SQLite/WAL): a hit costs nothing;
- **rate limits**: at most ``requests_per_minute`` request starts per minute, spaced evenly;
- **concurrency**: at most ``concurrency`` requests in flight (the slot is held only while a
  request is in flight, never while backing off);
- **timeouts**: ``timeout`` seconds per request (retried, except on a backend that computes
  locally, ``local_compute``: the local ``hf`` model would redo the same work at the same speed);
- **retries**: a retryable error (timeout, 429, 5xx, dropped connection) waits
  ``backoff_base * 2**(attempt-1)`` seconds with jitter (uniform between half and all of it),
  at least the server's ``Retry-After``, at most ``backoff_max``; at most ``max_attempts`` tries.
  A non-retryable error (400, 401, ...) ends the call at once. This is the project's only
  retry loop;
- **cost**: tokens priced per million (``price``), summed per call and per client (`CallStats`).

Provider backends (`dca.llm.backends`: OpenAI-compatible, Anthropic; `dca.llm.hf`:
a local Hugging Face model) implement only `LLMBackend`: ``generate`` one answer and
``classify`` an exception (what kind, retryable or not, ``Retry-After``).

API::

    from dca.llm import Grammar, LLMClient, LLMSpec, LLMCallFailed, run_sync

    spec = LLMSpec(backend="openai", model="gpt-4o-mini", concurrency=8, requests_per_minute=500,
                   price={"input": 0.15, "output": 0.6})
    client = LLMClient.from_spec(spec, cache=ReviewCache(path))        # or LLMClient(backend, ...)
    # async code (one event loop per client):
    generation = await client.generate(messages, namespace="judge-v1", json_schema=schema)
    generation.text, generation.input_tokens, generation.cost, generation.cached
    # synchronous code: the same call on the process's background event loop
    generation = client.generate_sync(messages, namespace="bridge-v1")
    # a decoding constraint for a backend that decodes locally (hf); others ignore it:
    generation = await client.generate(messages, namespace="review-v3", grammar=Grammar("ebnf", 'root ::= "yes" | "no"'))
    client.stats              # CallStats: requests, answered, cached, retries, failed, tokens, cost
    await client.aclose()     # or client.close() from synchronous code

``messages`` are chat messages (``[{"role": "system"|"user"|"assistant", "content": str}]``).
``namespace`` names the caller's prompt protocol (``review-v3``, ``bridge-v1``, ...) and is part
of the cache key with the backend, endpoint, model, generation parameters, the messages and
the JSON schema and grammar. ``grammar`` (a `Grammar`: EBNF text or a JSON schema) constrains
decoding token by token where the backend decodes itself (``hf``); remote backends ignore it.
The caller decides the grammar (the review layer builds the review answer's,
`dca.review.grammar`); without one a local model decodes unconstrained (the judge, problem
generation, bridge edits). Only answers are cached, and only those the caller's
``accept`` check passes (a failed call or an answer that did not parse is asked again next
time). ``json_schema`` asks for structured output where the backend supports it
(OpenAI-compatible endpoints; an endpoint that rejects it is asked again without it and plain
JSON is expected from then on; Anthropic and local models get the format from the prompt).
A call that fails for good raises `LLMCallFailed` (``kind``: ``timeout``, ``rate_limited``,
``server_error``, ``connection_error``, ``client_error``, ``backend_error``); callers turn it
into their own failed record (a failed review, a template bridge), never a crash.

A client's asyncio primitives and HTTP connections belong to the event loop it is first used
on: use a client either from async code on one loop, or through the ``*_sync`` methods (which
run on one background loop shared by the process, `run_sync`), not both. API keys are read
from the environment variable the spec names, only when the backend is built, and never
written to the cache, a record or an error message.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from ..redact import redact, redact_url
from .backends import make_backend
from .cache import cache_key
from .spec import CallError, CallStats, Generation, Grammar, LLMBackend, LLMCallFailed, LLMSpec

__all__ = ["LLMClient", "RateLimiter", "backoff_delay", "run_sync"]

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Limits


class RateLimiter:
    """At most `per_minute` starts per minute, spaced evenly (no bursts)."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.next_start = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def backoff_delay(spec: LLMSpec, attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after failed try `attempt` (1-based): exponential with jitter, at least
    the server's Retry-After, at most ``backoff_max``."""
    ceiling = min(spec.backoff_max, spec.backoff_base * 2 ** (attempt - 1))
    delay = ceiling * rng.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, spec.backoff_max))
    return delay


# ---------------------------------------------------------------------------------------------
# The background event loop for synchronous callers

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="dca-llm-loop", daemon=True).start()
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
    """Run `coroutine` on the process's background event loop and wait for its result.

    Synchronous code (the trainer, ``dca review``, ``dca edit``) uses LLM clients through this
    one loop, so their connections and limits live across calls.
    """
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("run_sync called from the background loop itself; await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


# ---------------------------------------------------------------------------------------------
# The client


class LLMClient:
    """Cache, limits, retries and cost around one backend (see the module docstring)."""

    def __init__(self, backend: LLMBackend, spec: LLMSpec, *, cache=None, rng: random.Random | None = None):
        self.backend = backend
        self.spec = spec
        self.cache = cache
        self.rng = rng or random.Random()
        self.stats = CallStats()
        self.limiter = RateLimiter(spec.requests_per_minute)
        self._semaphore: asyncio.Semaphore | None = None

    @classmethod
    def from_spec(cls, spec: LLMSpec, *, cache=None, backend: LLMBackend | None = None, rng: random.Random | None = None) -> "LLMClient":
        """The client for `spec`; `backend` overrides the one the spec names (tests of paid
        APIs pass a backend bound to a local server). A missing API key is a `UserError` here."""
        if backend is None:
            backend = make_backend(spec)
        return cls(backend, spec, cache=cache, rng=rng)

    def key(self, messages: list[dict[str, str]], *, namespace: str, json_schema: dict | None = None, grammar: Grammar | None = None) -> str:
        """The cache key of a call."""
        params = self.backend.cache_params()
        if json_schema is not None:
            params = {**params, "json_schema": json_schema}
        if grammar is not None:
            engine = getattr(self.backend, "grammar_engine", None)
            params = {**params, "grammar": {"kind": grammar.kind, "text": grammar.text, "engine": engine}}
        return cache_key(
            backend=self.spec.backend, base_url=self.spec.base_url, model=self.spec.model,
            params=params, protocol=namespace, messages=messages,
        )  # fmt: skip

    async def generate(
        self, messages: list[dict[str, str]], *, namespace: str, json_schema: dict | None = None, grammar: Grammar | None = None,
        accept: Callable[[str], bool] | None = None
    ) -> Generation:
        """One answer to `messages`, from the cache or the backend; raises `LLMCallFailed`.

        The answer's text and model name are redacted (`dca.redact.redact`: a server may echo a
        credential). `accept`, when given, is the caller's check of an answer (it parses): an
        answer it refuses is returned but not cached, so a re-run asks again rather than
        replaying the failure."""
        spec, stats = self.spec, self.stats
        stats.calls += 1
        key = self.key(messages, namespace=namespace, json_schema=json_schema, grammar=grammar)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None and (accept is None or accept(hit["text"])):  # an entry it refuses (an older cache's failure) heals
                stats.cached += 1
                return Generation(**hit, cached=True)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(spec.concurrency)
        retries = 0
        for attempt in range(1, spec.max_attempts + 1):
            await self.limiter.wait()
            async with self._semaphore:
                stats.requests += 1
                stats.in_flight += 1
                stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                try:
                    generation = await asyncio.wait_for(self.backend.generate(messages, json_schema=json_schema, grammar=grammar), spec.timeout)
                except asyncio.TimeoutError:
                    local = getattr(self.backend, "local_compute", False)  # the same work again on the same machine
                    hint = f"; a local model: raise the reviewer's timeout (now {spec.timeout:g} s)" if local else ""
                    error = CallError("timeout", not local, f"no answer within {spec.timeout:g} s{hint}")
                except Exception as e:  # noqa: BLE001 - the backend classifies it
                    error = self.backend.classify(e)
                    error.message = redact(error.message)  # whatever a server echoed back
                else:
                    generation.text, generation.model = redact(generation.text), redact(generation.model)
                    generation.cost = spec.price.cost(generation.input_tokens, generation.output_tokens)
                    generation.requests, generation.retries = attempt, retries
                    stats.answered += 1
                    stats.input_tokens += generation.input_tokens
                    stats.output_tokens += generation.output_tokens
                    stats.cost += generation.cost
                    if self.cache is not None and (accept is None or accept(generation.text)):
                        request = {"backend": spec.backend, "base_url": redact_url(spec.base_url), "model": spec.model, "namespace": namespace, "messages": messages}
                        self.cache.put(key, request, generation.cache_record())
                    return generation
                finally:
                    stats.in_flight -= 1
            if not error.retryable or attempt == spec.max_attempts:
                stats.failed += 1
                stats.failed_by_kind[error.kind] = stats.failed_by_kind.get(error.kind, 0) + 1
                raise LLMCallFailed(error, attempt, retries)
            retries += 1
            stats.retries += 1
            await asyncio.sleep(backoff_delay(spec, attempt, error.retry_after, self.rng))
        raise AssertionError("unreachable")  # pragma: no cover

    def generate_sync(
        self, messages: list[dict[str, str]], *, namespace: str, json_schema: dict | None = None, grammar: Grammar | None = None,
        accept: Callable[[str], bool] | None = None
    ) -> Generation:
        """`generate` from synchronous code (on the background loop, `run_sync`)."""
        return run_sync(self.generate(messages, namespace=namespace, json_schema=json_schema, grammar=grammar, accept=accept))

    async def aclose(self) -> None:
        await self.backend.aclose()

    def close(self) -> None:
        """`aclose` from synchronous code."""
        run_sync(self.aclose())
