"""The one LLM client: every call the project makes to a language model goes through `LLMClient`.

It owns, once for every caller (reviews, ``dca edit``'s LLM bridges, and later problem
generation, LLM judges and dialogue reviews):

- the **cache** (`dca.review.cache.ReviewCache`, SQLite/WAL): a hit costs nothing;
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

Provider backends (`dca.review.backends`: OpenAI-compatible, Anthropic; `dca.review.local`:
a local Hugging Face model) implement only `LLMBackend`: ``generate`` one answer and
``classify`` an exception (what kind, retryable or not, ``Retry-After``).

API::

    from dca.llm import LLMClient, LLMSpec, LLMCallFailed, run_sync

    spec = LLMSpec(backend="openai", model="gpt-4o-mini", concurrency=8, requests_per_minute=500,
                   price={"input": 0.15, "output": 0.6})
    client = LLMClient.from_spec(spec, cache=ReviewCache(path))        # or LLMClient(backend, ...)
    # async code (one event loop per client):
    generation = await client.generate(messages, namespace="judge-v1", json_schema=schema)
    generation.text, generation.input_tokens, generation.cost, generation.cached
    # synchronous code: the same call on the process's background event loop
    generation = client.generate_sync(messages, namespace="bridge-v1")
    client.stats              # CallStats: requests, answered, cached, retries, failed, tokens, cost
    await client.aclose()     # or client.close() from synchronous code

``messages`` are chat messages (``[{"role": "system"|"user"|"assistant", "content": str}]``).
``namespace`` names the caller's prompt protocol (``review-v3``, ``bridge-v1``, ...) and is part
of the cache key with the backend, endpoint, model, generation parameters, the messages and
the JSON schema. ``json_schema`` asks for structured output where the backend supports it
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
from dataclasses import dataclass, field
from typing import Any, Awaitable, Coroutine, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .redact import redact_url

__all__ = [
    "CallError",
    "CallStats",
    "Generation",
    "LLMBackend",
    "LLMCallFailed",
    "LLMClient",
    "LLMSpec",
    "Price",
    "RateLimiter",
    "backoff_delay",
    "run_sync",
]

T = TypeVar("T")

#: Providers an `LLMSpec` can name; each is built by `dca.review.backends.make_backend`.
LLM_BACKENDS = ("openai", "anthropic", "hf")

_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


# ---------------------------------------------------------------------------------------------
# Settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


class LLMSpec(_Strict):
    """Which model to call and how (`dca.review.config.ReviewerSpec` extends it)."""

    backend: str = Field(description="openai, anthropic or hf.")
    model: str = Field("", description="Model id.")
    base_url: str | None = Field(None, description="Endpoint of an OpenAI-compatible or Anthropic API.")
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    params: dict[str, Any] = Field(default_factory=dict, description="Generation parameters passed to the backend.")
    price: Price = Price()
    structured_output: bool = Field(True, description="Ask an OpenAI-compatible endpoint for JSON-schema output when a caller gives a schema.")
    concurrency: int = Field(4, ge=1, le=512, description="Requests in flight at once.")
    requests_per_minute: float | None = Field(None, gt=0)
    timeout: float = Field(120.0, gt=0, le=3600, description="Seconds per request.")
    max_attempts: int = Field(4, ge=1, le=20, description="Tries per call for retryable errors.")
    backoff_base: float = Field(1.0, ge=0, le=60, description="First retry waits about this many seconds, doubling after.")
    backoff_max: float = Field(60.0, ge=0, le=600, description="Longest wait between tries (Retry-After is capped here too).")

    def default_key_env(self) -> None:
        if self.api_key_env is None and self.backend in _DEFAULT_KEY_ENV:
            self.api_key_env = _DEFAULT_KEY_ENV[self.backend]


# ---------------------------------------------------------------------------------------------
# What a backend implements


@dataclass
class Generation:
    """One answered call. The client fills the last four fields."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    cost: float = 0.0
    """USD for this call (0 when served from the cache)."""
    cached: bool = False
    cached_input_tokens: int = 0
    """Input tokens the provider served from its prompt cache, where its usage reports them
    (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``)."""
    requests: int = 0
    """Requests made for it, retries included (0 when cached)."""
    retries: int = 0

    def cache_record(self) -> dict[str, Any]:
        return {"text": self.text, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "model": self.model}


@dataclass
class CallError:
    """A failed request, classified by its backend."""

    kind: Literal["timeout", "rate_limited", "server_error", "connection_error", "client_error", "backend_error"] | str
    retryable: bool
    message: str
    retry_after: float | None = None
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``)."""


class LLMBackend(Protocol):
    """A provider: one answer per request, and whether an error is worth retrying."""

    def cache_params(self) -> dict[str, Any]:
        """The generation parameters that change the answer (part of the cache key)."""
        ...

    async def generate(self, messages: list[dict[str, str]], *, json_schema: dict | None = None) -> Generation: ...

    def classify(self, error: BaseException) -> CallError: ...

    async def aclose(self) -> None: ...


class LLMCallFailed(Exception):
    """A call that failed for good; ``kind`` as in `CallError`, ``requests`` made."""

    def __init__(self, error: CallError, requests: int, retries: int):
        super().__init__(f"{error.message} (after {requests} attempt{'s' if requests != 1 else ''})")
        self.kind = error.kind
        self.requests = requests
        self.retries = retries


@dataclass
class CallStats:
    """A client's totals."""

    calls: int = 0
    """`generate` calls (cached ones included)."""
    requests: int = 0
    """Requests started, retries included."""
    answered: int = 0
    """Calls the backend answered (new, paid calls)."""
    cached: int = 0
    retries: int = 0
    failed: int = 0
    failed_by_kind: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls, "requests": self.requests, "answered_calls": self.answered, "cached_calls": self.cached,
            "retries": self.retries, "failed_calls": self.failed, "failed_by_kind": dict(sorted(self.failed_by_kind.items())),
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": round(self.cost, 6),
        }  # fmt: skip


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
            from .review.backends import make_backend

            backend = make_backend(spec)
        return cls(backend, spec, cache=cache, rng=rng)

    def key(self, messages: list[dict[str, str]], *, namespace: str, json_schema: dict | None = None) -> str:
        """The cache key of a call."""
        from .review.cache import cache_key

        params = self.backend.cache_params()
        if json_schema is not None:
            params = {**params, "json_schema": json_schema}
        return cache_key(
            backend=self.spec.backend, base_url=self.spec.base_url, model=self.spec.model,
            params=params, protocol=namespace, messages=messages,
        )  # fmt: skip

    async def generate(self, messages: list[dict[str, str]], *, namespace: str, json_schema: dict | None = None) -> Generation:
        """One answer to `messages`, from the cache or the backend; raises `LLMCallFailed`."""
        spec, stats = self.spec, self.stats
        stats.calls += 1
        key = self.key(messages, namespace=namespace, json_schema=json_schema)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
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
                    generation = await asyncio.wait_for(self.backend.generate(messages, json_schema=json_schema), spec.timeout)
                except asyncio.TimeoutError:
                    local = getattr(self.backend, "local_compute", False)  # the same work again on the same machine
                    hint = f"; a local model: raise the reviewer's timeout (now {spec.timeout:g} s)" if local else ""
                    error = CallError("timeout", not local, f"no answer within {spec.timeout:g} s{hint}")
                except Exception as e:  # noqa: BLE001 - the backend classifies it
                    error = self.backend.classify(e)
                else:
                    generation.cost = spec.price.cost(generation.input_tokens, generation.output_tokens)
                    generation.requests, generation.retries = attempt, retries
                    stats.answered += 1
                    stats.input_tokens += generation.input_tokens
                    stats.output_tokens += generation.output_tokens
                    stats.cost += generation.cost
                    if self.cache is not None:
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

    def generate_sync(self, messages: list[dict[str, str]], *, namespace: str, json_schema: dict | None = None) -> Generation:
        """`generate` from synchronous code (on the background loop, `run_sync`)."""
        return run_sync(self.generate(messages, namespace=namespace, json_schema=json_schema))

    async def aclose(self) -> None:
        await self.backend.aclose()

    def close(self) -> None:
        """`aclose` from synchronous code."""
        run_sync(self.aclose())
