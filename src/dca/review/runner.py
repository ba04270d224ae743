"""The review runner: every configured reviewer over many traces, concurrently, cached, and
never able to crash the run that uses it.

For an LLM reviewer one review is: build the protocol's messages, make a call, validate the
answer; an invalid answer gets up to ``repair_attempts`` more turns that show the
validation error. Each call goes through, in order:

1. the cache (`ReviewCache`): a hit costs nothing and is counted as ``cached_calls``;
2. the reviewer's requests-per-minute limiter (requests are spaced evenly) and its
   concurrency semaphore (held only while a request is in flight, never while backing off);
3. the backend, under a per-call timeout;
4. on a retryable error (timeout, 429, 5xx, dropped connection) a wait of
   ``backoff_base * 2**(attempt-1)`` seconds with full jitter (uniform between half and all
   of it), at least the server's ``Retry-After``, at most ``backoff_max``; at most
   ``max_attempts`` tries. A non-retryable error (400, 401, ...) ends the call at once.

A review that still fails is a `Review` with ``status="failed"``, its ``error`` and
``metadata["failure"]`` (the kind: ``timeout``, ``rate_limited``, ``server_error``,
``connection_error``, ``client_error``, ``backend_error``, ``invalid_answer``,
``reviewer_error``, ``unsupported_problem``); it is never an exception. Programmatic
reviewers (oracle, reference) make no calls; `review_all` runs them before any call starts,
so that their CPU time never stalls the event loop while calls are in flight (a stalled loop
fires per-call timeouts spuriously).

Accounting: every review's ``usage`` holds its input/output tokens, cost (from the
reviewer's price per million tokens; cached calls cost nothing again and count 0),
requests made, calls answered, calls served from the cache and seconds spent;
`ReviewerStats` sums them per reviewer for the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from ..records import Problem, Review, Trace, Unit
from .backends import Backend, CallError, Generation, make_backend
from .cache import ReviewCache, cache_key
from .config import ReviewerSpec
from .oracle import OracleReviewer
from .protocol import PROTOCOL_VERSION, InvalidAnswer, build_messages, parse_answer, repair_message
from .reference import ReferenceReviewer

__all__ = ["ReviewItem", "ReviewRunner", "ReviewerStats", "RunnerReviewer", "default_cache_path"]

#: A rejected answer shown back to the reviewer in a repair turn is cut to this length.
MAX_REPAIR_ECHO_CHARS = 4000


def default_cache_path() -> Path:
    """``$DCA_CACHE_DIR/review-cache.sqlite`` (``~/.cache/dca`` when unset)."""
    root = Path(os.environ.get("DCA_CACHE_DIR") or Path.home() / ".cache" / "dca")
    return root / "review-cache.sqlite"


@dataclass
class ReviewItem:
    """One trace to review, with its problem and units."""

    problem: Problem
    trace: Trace
    units: list[Unit]


@dataclass
class ReviewerStats:
    """One reviewer's totals over a run."""

    reviews: int = 0
    ok: int = 0
    failed: int = 0
    failed_by_reason: Counter = field(default_factory=Counter)
    requests: int = 0
    """HTTP requests (or local generations) started, retries included."""
    answered_calls: int = 0
    """Calls that returned an answer from the backend (new, paid calls)."""
    cached_calls: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, review: Review) -> None:
        self.reviews += 1
        if review.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
            self.failed_by_reason[review.metadata.get("failure", "reviewer_failed")] += 1
        self.input_tokens += int(review.usage.get("input_tokens", 0))
        self.output_tokens += int(review.usage.get("output_tokens", 0))
        self.cost += review.usage.get("cost_usd", 0.0)


class _CallFailed(Exception):
    def __init__(self, error: CallError, attempts: int):
        super().__init__(f"{error.message} (after {attempts} attempt{'s' if attempts > 1 else ''})")
        self.kind = error.kind


class _RateLimiter:
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


class _Usage:
    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = 0
        self.requests = self.answered = self.cached = 0
        self.cost = 0.0


class _LLMReviewer:
    """One configured LLM reviewer: its backend, limits and stats."""

    def __init__(self, spec: ReviewerSpec, backend: Backend):
        self.spec = spec
        self.backend = backend
        self.semaphore = asyncio.Semaphore(spec.concurrency)
        self.limiter = _RateLimiter(spec.requests_per_minute)


class ReviewRunner:
    """Runs configured reviewers over review items (see the module docstring).

    Use from async code (``await runner.review(name, item)``, ``await runner.review_all(...)``,
    ``await runner.aclose()``); `RunnerReviewer` wraps it for synchronous callers.
    """

    def __init__(
        self,
        specs: list[ReviewerSpec],
        *,
        cache: ReviewCache | None = None,
        rng: random.Random | None = None,
        backends: dict[str, Backend] | None = None,
    ):
        """`backends` overrides the backend built for a reviewer name (tests of paid APIs
        pass a backend bound to a local server); by default each spec builds its own."""
        self.specs = {s.name: s for s in specs}
        self.cache = cache
        self.rng = rng or random.Random()
        self.stats = {s.name: ReviewerStats() for s in specs}
        self._programmatic = {"oracle": OracleReviewer(), "reference": ReferenceReviewer()}
        self._llm: dict[str, _LLMReviewer] = {}
        self._backends = backends or {}

    def _reviewer(self, spec: ReviewerSpec) -> _LLMReviewer:
        if spec.name not in self._llm:  # built lazily, inside the running event loop
            backend = self._backends.get(spec.name) or make_backend(spec)
            self._llm[spec.name] = _LLMReviewer(spec, backend)
        return self._llm[spec.name]

    def prepare(self) -> None:
        """Build every LLM backend now, so a missing API key is a `UserError` before any work."""
        for spec in self.specs.values():
            if spec.is_llm:
                self._reviewer(spec)

    async def aclose(self) -> None:
        for reviewer in self._llm.values():
            await reviewer.backend.aclose()
        self._llm.clear()

    # -- reviews ---------------------------------------------------------------------------

    async def review_all(
        self, items: Iterable[ReviewItem], *, on_review: Callable[[Review], Any] | None = None
    ) -> list[Review]:
        """Every item by every reviewer; reviews come back in (item, reviewer) order.

        Programmatic reviews run first, one after another: they are CPU work, and running them
        while calls are in flight would stall the event loop past the calls' timeouts.
        """
        jobs = [(item, name) for item in items for name in self.specs]
        reviews: dict[tuple[int, str], Review] = {}

        async def one(index: int, item: ReviewItem, name: str) -> None:
            review = await self.review(name, item)
            reviews[index, name] = review
            if on_review is not None:
                on_review(review)

        for index, (item, name) in enumerate(jobs):
            if not self.specs[name].is_llm:
                await one(index, item, name)
        await asyncio.gather(*(one(i, item, name) for i, (item, name) in enumerate(jobs) if self.specs[name].is_llm))
        return [reviews[i, name] for i, (_, name) in enumerate(jobs)]

    async def review(self, name: str, item: ReviewItem) -> Review:
        """One review by the named reviewer; failures come back as failed reviews."""
        spec = self.specs[name]
        started = time.perf_counter()
        try:
            if spec.is_llm:
                review = await self._llm_review(spec, item)
            else:
                review = self._programmatic_review(spec, item)
        except Exception as e:  # noqa: BLE001 - a reviewer failure is data, never a crash
            review = _failed(spec, item, "reviewer_error", f"{type(e).__name__}: {e}"[:500], _Usage())
        review.usage["seconds"] = round(time.perf_counter() - started, 4)
        self.stats[name].add(review)
        return review

    def _programmatic_review(self, spec: ReviewerSpec, item: ReviewItem) -> Review:
        review = self._programmatic[spec.backend].review(item.problem, item.trace.completion, item.units, trace_id=item.trace.id)
        review.reviewer = spec.name
        if review.status != "ok":
            review.metadata.setdefault("failure", "unsupported_problem")
        review.metadata.setdefault("backend", spec.backend)
        return review

    async def _llm_review(self, spec: ReviewerSpec, item: ReviewItem) -> Review:
        reviewer = self._reviewer(spec)
        messages = build_messages(
            item.problem,
            item.trace,
            item.units,
            mode=spec.mode,
            answer_format=spec.answer_format,
            show_reference_answer=spec.show_reference_answer,
        )
        usage = _Usage()
        error: InvalidAnswer | None = None
        text = ""
        for _turn in range(spec.repair_attempts + 1):
            try:
                generation = await self._call(reviewer, messages, usage)
            except _CallFailed as e:
                return _failed(spec, item, e.kind, str(e), usage)
            text = generation.text
            try:
                parsed = parse_answer(text, item.units, mode=spec.mode, completion=item.trace.completion)
            except InvalidAnswer as e:
                error = e
                echo = text[:MAX_REPAIR_ECHO_CHARS]
                messages = [*messages, {"role": "assistant", "content": echo}, repair_message(e)]
                continue
            metadata = _metadata(spec, repairs=_turn)
            if parsed.unaligned_quotes:
                metadata["unaligned_quotes"] = parsed.unaligned_quotes
            return Review(
                trace_id=item.trace.id,
                reviewer=spec.name,
                units=item.units,
                steps=parsed.steps,
                unreviewed_units=parsed.unreviewed_units,
                usage=_usage_dict(usage),
                metadata=metadata,
            )
        review = _failed(spec, item, "invalid_answer", f"invalid answer after {spec.repair_attempts + 1} turn(s): {error}", usage)
        review.metadata["answer_excerpt"] = text[:1000]
        return review

    async def _call(self, reviewer: _LLMReviewer, messages: list[dict[str, str]], usage: _Usage) -> Generation:
        spec = reviewer.spec
        stats = self.stats[spec.name]
        key = cache_key(
            backend=spec.backend,
            base_url=spec.base_url,
            model=spec.model,
            params=reviewer.backend.cache_params(),
            protocol=PROTOCOL_VERSION,
            messages=messages,
        )
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                usage.cached += 1
                stats.cached_calls += 1
                return Generation(**hit)
        for attempt in range(1, spec.max_attempts + 1):
            await reviewer.limiter.wait()
            async with reviewer.semaphore:
                usage.requests += 1
                stats.requests += 1
                try:
                    generation = await asyncio.wait_for(reviewer.backend.generate(messages), spec.timeout)
                except asyncio.TimeoutError:
                    error = CallError("timeout", True, f"no answer within {spec.timeout:g} s")
                except Exception as e:  # noqa: BLE001 - classified below
                    error = reviewer.backend.classify(e)
                else:
                    usage.answered += 1
                    stats.answered_calls += 1
                    usage.input_tokens += generation.input_tokens
                    usage.output_tokens += generation.output_tokens
                    usage.cost += spec.price.cost(generation.input_tokens, generation.output_tokens)
                    if self.cache is not None:
                        self.cache.put(
                            key,
                            {"backend": spec.backend, "base_url": spec.base_url, "model": spec.model, "messages": messages},
                            generation.__dict__,
                        )
                    return generation
            if not error.retryable or attempt == spec.max_attempts:
                raise _CallFailed(error, attempt)
            stats.retries += 1
            await asyncio.sleep(self._backoff(spec, attempt, error.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, spec: ReviewerSpec, attempt: int, retry_after: float | None) -> float:
        ceiling = min(spec.backoff_max, spec.backoff_base * 2 ** (attempt - 1))
        delay = ceiling * self.rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, spec.backoff_max))
        return delay


def _metadata(spec: ReviewerSpec, **extra) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL_VERSION,
        "backend": spec.backend,
        "model": spec.model,
        "mode": spec.mode,
        "answer_format": spec.answer_format,
        **extra,
    }


def _usage_dict(usage: _Usage) -> dict[str, float]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost,
        "requests": usage.requests,
        "answered_calls": usage.answered,
        "cached_calls": usage.cached,
    }


def _failed(spec: ReviewerSpec, item: ReviewItem, kind: str, error: str, usage: _Usage) -> Review:
    return Review(
        trace_id=item.trace.id,
        reviewer=spec.name,
        units=item.units,
        status="failed",
        error=f"{kind}: {error}",
        unreviewed_units=[u.index for u in item.units],
        usage=_usage_dict(usage),
        metadata=_metadata(spec, failure=kind),
    )


# ---------------------------------------------------------------------------------------------
# The synchronous adapter for the trainer


class RunnerReviewer:
    """Any configured reviewer behind the synchronous `dca.review.Reviewer` protocol.

    Calls go through a `ReviewRunner` (cache, retries, failed-review records) on an event
    loop in a background thread, so backend clients and their connections live across calls.
    The trace's outcome, which the protocol's prompt shows, is recomputed from the completion
    with the same answer checker the trainer uses.
    """

    def __init__(self, spec: ReviewerSpec, *, cache: ReviewCache | None = None):
        self.name = spec.name
        self.spec = spec
        self._runner = ReviewRunner([spec], cache=cache)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"reviewer-{spec.name}", daemon=True)
        self._thread.start()
        try:
            self._submit(self._prepare()).result()  # a missing API key fails here, as a UserError
        except BaseException:
            self.close()
            raise

    async def _prepare(self) -> None:
        self._runner.prepare()

    def _submit(self, coroutine: Awaitable) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    @property
    def stats(self) -> ReviewerStats:
        return self._runner.stats[self.name]

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        from ..domains import check as check_domain

        check = check_domain(problem, trace_completion)
        trace = Trace(
            id=trace_id, problem_id=problem.id, prompt="", completion=trace_completion, answer=check.answer, outcome=check.outcome
        )
        return self._submit(self._runner.review(self.name, ReviewItem(problem=problem, trace=trace, units=units))).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._submit(self._runner.aclose()).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
