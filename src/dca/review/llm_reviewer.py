"""LLM reviewers: each review is one or more cached calls through `dca.llm.LLMClient`, and a
failure is a failed review, never an exception. (The runner behind ``dca review``, over many
traces and reviewers, is `dca.review.runner`.)

For an LLM reviewer (`LLMReviewer`) one review is: build the protocol's messages, make a call
through the reviewer's `dca.llm.LLMClient` (cache, requests-per-minute, concurrency, timeout,
retries with jitter and ``Retry-After``, cost: all there, once), validate the answer; an
invalid answer gets up to ``repair_attempts`` more turns that show the validation error.
``review_many`` starts every item's review at once; the client's limits decide how many calls
are in flight. With ``dialogue`` in its spec (protocol ``dca-review/2``, `dca.review.dialogue`)
the reviewer may first ask up to ``max_questions`` questions, each answered by its answerer;
every reviewer turn is one cached client call, and the transcript is kept in the review. An
``hf`` reviewer's calls carry the review answer's grammar (`dca.review.grammar`), built from
the trace's unit count and, in a dialogue, whether the reviewer may still ask a question.

A review that still fails is a `Review` with ``status="failed"``, its ``error`` and
``metadata["failure"]`` (the kind: ``timeout``, ``rate_limited``, ``server_error``,
``connection_error``, ``client_error``, ``backend_error``, ``invalid_answer``,
``reviewer_error``, ``unsupported_problem``); it is never an exception.

Accounting: every review's ``usage`` holds its input/output tokens, cost (from the
reviewer's price per million tokens; cached calls cost nothing again and count 0),
requests made, retries, calls answered, calls served from the cache and seconds spent;
`ReviewerStats` sums them per reviewer for the run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..domains import check as check_domain
from ..llm import LLMCallFailed, LLMClient, run_sync
from ..records import Problem, Review, Trace, Unit
from ..redact import redact, redact_url
from .base import ReviewItem, failed_review
from .config import ReviewerSpec
from .dialogue import DIALOGUE_PROTOCOL_VERSION, converse, parse_question, with_dialogue
from .grammar import ReviewGrammar
from .protocol import PROTOCOL_VERSION, InvalidAnswer, answer_json_schema, build_messages, parse_answer, repair_message, unreviewable

__all__ = ["LLMReviewer", "ReviewItem", "ReviewerStats"]

#: A rejected answer shown back to the reviewer in a repair turn is cut to this length.
MAX_REPAIR_ECHO_CHARS = 4000


@dataclass
class ReviewerStats:
    """One reviewer's totals over a run (summed from its reviews' ``usage``)."""

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
    cached_input_tokens: int = 0
    """Input tokens the provider reported as served from its prompt cache."""
    cost: float = 0.0

    def add(self, review: Review) -> None:
        self.reviews += 1
        if review.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
            self.failed_by_reason[review.metadata.get("failure", "reviewer_failed")] += 1
        usage = review.usage
        self.requests += int(usage.get("requests", 0))
        self.answered_calls += int(usage.get("answered_calls", 0))
        self.cached_calls += int(usage.get("cached_calls", 0))
        self.retries += int(usage.get("retries", 0))
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.cached_input_tokens += int(usage.get("cached_input_tokens", 0))
        self.cost += usage.get("cost_usd", 0.0)


class _Usage:
    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.requests = self.answered = self.cached = self.retries = 0
        self.dialogue_input_tokens = self.dialogue_output_tokens = 0
        self.cost = 0.0

    def add(self, generation) -> None:
        self.input_tokens += generation.input_tokens
        self.output_tokens += generation.output_tokens
        self.cached_input_tokens += 0 if generation.cached else generation.cached_input_tokens
        self.cost += generation.cost
        self.requests += generation.requests
        self.retries += generation.retries
        if generation.cached:
            self.cached += 1
        else:
            self.answered += 1

    def as_dict(self) -> dict[str, float]:
        usage = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost,
            "requests": self.requests,
            "retries": self.retries,
            "answered_calls": self.answered,
            "cached_calls": self.cached,
        }
        if self.cached_input_tokens:  # the provider's prompt cache served part of the input
            usage["cached_input_tokens"] = self.cached_input_tokens
        if self.dialogue_input_tokens or self.dialogue_output_tokens:  # the answerer's replies in a dialogue review
            usage.update(dialogue_input_tokens=self.dialogue_input_tokens, dialogue_output_tokens=self.dialogue_output_tokens)
        return usage


class LLMReviewer:
    """A reviewer that answers the review protocol through an `LLMClient` (see the module docstring).

    ``review_many`` and ``areview`` are for async code; ``review`` (the synchronous
    `dca.review.base.Reviewer` form) runs on the process's background event loop. Use one
    of the two styles per reviewer (see `dca.llm`).
    """

    inline = False

    def __init__(self, spec: ReviewerSpec, client: LLMClient, *, answerer: Any = None):
        """`answerer`: who replies to a dialogue reviewer's questions (`dca.review.dialogue`);
        dialogue mode is on when the spec declares ``dialogue`` with questions and it is set."""
        self.spec = spec
        self.client = client
        self.answerer = answerer
        self.max_questions = spec.dialogue.max_questions if (spec.dialogue is not None and answerer is not None) else 0
        self.name = spec.name
        self._schema = answer_json_schema(spec.mode) if (spec.answer_format == "json" or spec.mode == "quotes") else None
        self._grammar = ReviewGrammar.from_spec(spec)  # None: the backend decodes the answer unconstrained

    async def review_many(self, items: Sequence[ReviewItem]) -> list[Review]:
        return list(await asyncio.gather(*(self.areview(item) for item in items)))

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        """The trace's outcome, which the prompt shows, is recomputed from the completion with
        the problem's domain verifier, as the trainer does."""
        check = check_domain(problem, trace_completion)
        trace = Trace(id=trace_id, problem_id=problem.id, prompt="", completion=trace_completion, answer=check.answer, outcome=check.outcome)
        return run_sync(self.areview(ReviewItem(problem=problem, trace=trace, units=units)))

    async def areview(self, item: ReviewItem) -> Review:
        """One review; failures come back as failed reviews."""
        started = time.perf_counter()
        usage = _Usage()
        try:
            review = await self._review(item, usage)
        except Exception as e:  # noqa: BLE001 - a reviewer failure is data, never a crash
            review = self._failed(item, "reviewer_error", redact(f"{type(e).__name__}: {e}")[:500], usage)  # masked before it is cut
        review.usage["seconds"] = round(time.perf_counter() - started, 4)
        return review

    async def _review(self, item: ReviewItem, usage: _Usage) -> Review:
        spec = self.spec
        messages = build_messages(
            item.problem, item.trace, item.units,
            mode=spec.mode, answer_format=spec.answer_format, show_reference_answer=spec.show_reference_answer,
        )  # fmt: skip
        reason = unreviewable(item.units, messages, max_prompt_tokens=spec.max_prompt_tokens)
        if reason is not None:  # recorded as failed at no cost: no call is made
            return self._failed(item, reason.split(":")[0].replace(" ", "_"), reason, usage)
        if self.max_questions:
            messages = with_dialogue(messages, self.max_questions)
        transcript: list = []

        def usable(text: str) -> bool:
            """Cached only when it parses (or is a dialogue question): a failure is asked again."""
            if self.max_questions and parse_question(text, item.units) is not None:
                return True
            try:
                parse_answer(text, item.units, mode=spec.mode, completion=item.trace.completion)
            except InvalidAnswer:
                return False
            return True

        async def call(request: list[dict[str, str]], questions: bool = False):
            grammar = self._grammar.build(len(item.units), questions=questions) if self._grammar is not None else None
            generation = await self.client.generate(
                request, namespace=self._namespace, json_schema=self._schema, grammar=grammar, accept=usable
            )
            usage.add(generation)
            return generation

        error: InvalidAnswer | None = None
        text = ""
        for turn in range(spec.repair_attempts + 1):
            try:
                if turn == 0 and self.max_questions:
                    conversation = await converse(
                        call, messages, item.problem, item.trace, item.units, max_questions=self.max_questions, answerer=self.answerer
                    )
                    generation, messages, transcript = conversation.generation, conversation.messages, conversation.transcript
                    usage.dialogue_input_tokens += conversation.reply_input_tokens
                    usage.dialogue_output_tokens += conversation.reply_output_tokens
                    usage.cost += conversation.reply_cost
                else:
                    generation = await call(messages)
            except LLMCallFailed as e:
                usage.requests += e.requests
                usage.retries += e.retries
                return self._failed(item, e.kind, str(e), usage, transcript)
            text = generation.text
            try:
                parsed = parse_answer(text, item.units, mode=spec.mode, completion=item.trace.completion)
            except InvalidAnswer as e:
                error = e
                messages = [*messages, {"role": "assistant", "content": text[:MAX_REPAIR_ECHO_CHARS]}, repair_message(e)]
                continue
            metadata = self._metadata(repairs=turn)
            if parsed.unaligned_quotes:
                metadata["unaligned_quotes"] = parsed.unaligned_quotes
            if self.max_questions:
                metadata["questions"] = sum(1 for t in transcript if t.role == "reviewer")
            return Review(
                trace_id=item.trace.id, reviewer=spec.name, units=item.units, steps=parsed.steps,
                unreviewed_units=parsed.unreviewed_units, usage=usage.as_dict(), metadata=metadata, dialogue=transcript,
            )  # fmt: skip
        # An answer that leaves units uncovered is its own failure kind: never an `ok` review
        # whose uncovered units would silently get no credit (see dca.review.protocol).
        kind = "uncovered_units" if str(error).startswith("uncovered units") else "invalid_answer"
        review = self._failed(item, kind, f"invalid answer after {spec.repair_attempts + 1} turn(s): {error}", usage, transcript)
        review.metadata["answer_excerpt"] = text[:1000]
        return review

    @property
    def _protocol(self) -> str:
        return DIALOGUE_PROTOCOL_VERSION if self.max_questions else PROTOCOL_VERSION

    @property
    def _namespace(self) -> str:
        """The cache namespace of a review call: the protocol and how the answer is asked for."""
        return f"{self._protocol}/{self.spec.mode}/{self.spec.answer_format}"

    def _metadata(self, **extra) -> dict[str, Any]:
        spec = self.spec
        metadata = {"protocol": self._protocol, "backend": spec.backend, "model": spec.model, "mode": spec.mode, "answer_format": spec.answer_format}
        if self.max_questions:
            metadata.update(max_questions=self.max_questions, answerer=self.answerer.name)
        return {**metadata, **extra}

    def _failed(self, item: ReviewItem, kind: str, error: str, usage: _Usage, transcript: list | None = None) -> Review:
        url = self.spec.base_url
        if url and redact_url(url) != url:  # an error message may quote the URL with its credentials
            error = error.replace(url, redact_url(url) or "")
        review = failed_review(self.name, item, kind, error, usage=usage.as_dict(), metadata=self._metadata())
        review.dialogue = list(transcript or [])
        return review

    @property
    def stats(self):
        """The client's call totals (`dca.llm.CallStats`)."""
        return self.client.stats

    async def aclose(self) -> None:
        await self.client.aclose()

    def close(self) -> None:
        """Close the client's connections (after synchronous use)."""
        run_sync(self.client.aclose())
