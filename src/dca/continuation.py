"""Continuing a model from an edited chain of thought, and reading the answer it gives.

The shared machinery of the faithfulness probes (`dca.faithfulness`) and the counterfactual
reviewer (`dca.review.counterfactual`): take a trace, edit its CoT, put the edited text at
the start of the assistant turn, and let the model either

- **continue** (write the rest of the CoT and an answer), or
- **answer directly**: ``Answer:`` is appended to the edited CoT (on a new line) and the model
  writes only a few tokens; the answer is read from that forced line alone.

**The CoT of a trace** (`split_cot`) is its completion up to the final-answer statement
(`dca.problems.answer.extract_answer`); a completion without one is all CoT. Its *CoT units*
are the `dca.segment` units before the first unit that touches the answer statement, so they
tile the CoT exactly and edits work on unit indices.

**Edits** (`CoTEdit`, applied by the pure function `apply_edit`):

- ``truncate``: keep units ``0..unit-1`` (``unit=0``: an empty CoT, ``unit=n``: all of it);
- ``delete``: drop unit ``unit`` and, with ``keep_rest`` (default), keep what follows;
- ``replace``: put ``text`` where unit ``unit`` was; ``keep_rest`` as for delete;
- ``filler``: the whole CoT becomes ``filler_tokens`` copies of `FILLER` (Lanham et al. 2023
  use " ..."); the caller passes the CoT's token count.

A replacement text gets the replaced unit's leading whitespace when it has none of its own, so
``replace`` with the unit's own text is the identity.

**Engines** implement `ContinuationEngine.continue_batch(requests, sampling)`: one
`Continuation` per request and sample, in request order. `HFContinuationEngine` runs any
Hugging Face causal LM (the embedded model included) batched with left padding, like
`dca.rollout`; `FunctionContinuationEngine` answers from a Python function (tests, stubs of
an answer distribution, or an adapter to another server). A request carries text only
(prompt and prefix strings), never tensors, so a vLLM or HTTP engine can implement the same
interface. An engine never raises for a failed batch: each of its continuations carries the
error, and the caller counts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Protocol

from .measures import word_count
from .problems.answer import check_answer, extract_answer
from .problems.labels import check_against_gold
from .problems.answer import ANSWER_PREFIX
from .records import Unit
from .model import SamplingConfig, generate_batch
from .segment import segment

EDIT_KINDS = ("none", "truncate", "delete", "replace", "filler")

#: One filler token's text (Lanham et al. 2023 fill the CoT with " ...").
FILLER = " ..."


# ---------------------------------------------------------------------------------------------
# The CoT of a trace and its edits (pure)


@dataclass(kw_only=True)
class CoT:
    """A completion split into its chain of thought and its final-answer statement."""

    text: str
    """The CoT: the completion up to the first unit of the answer statement."""
    units: list[Unit]
    """Units of the CoT (`dca.segment` units of the completion before the answer statement)."""
    answer_text: str
    """The rest of the completion (the answer statement and anything after it)."""


def split_cot(completion: str) -> CoT:
    """The CoT units of a completion (see the module docstring)."""
    units = segment(completion)
    span = extract_answer(completion).span
    if span is None:
        return CoT(text=completion, units=units, answer_text="")
    first_answer_unit = next((u.index for u in units if u.end > span[0]), len(units))
    kept = units[:first_answer_unit]
    end = kept[-1].end if kept else 0
    return CoT(text=completion[:end], units=kept, answer_text=completion[end:])


@dataclass(kw_only=True)
class CoTEdit:
    """One edit of a CoT (see the module docstring)."""

    kind: str = "none"
    """One of `EDIT_KINDS`."""
    unit: int = 0
    """The unit the edit is about (truncate: how many units are kept)."""
    text: str = ""
    """Replacement text (``replace``)."""
    keep_rest: bool = True
    """``delete`` / ``replace``: keep the units after `unit` (False: the CoT ends there and a
    continuation writes the rest)."""
    filler_tokens: int = 0
    """``filler``: how many copies of `FILLER`."""

    def __post_init__(self) -> None:
        if self.kind not in EDIT_KINDS:
            raise ValueError(f"edit kind must be one of {EDIT_KINDS}, got {self.kind!r}")
        if self.unit < 0 or self.filler_tokens < 0:
            raise ValueError("edit unit and filler_tokens must be >= 0")


def apply_edit(units: list[Unit], edit: CoTEdit) -> str:
    """The edited CoT text; `units` tile the CoT (`split_cot(...).units`)."""
    n = len(units)
    if edit.kind == "none":
        return "".join(u.text for u in units)
    if edit.kind == "filler":
        return FILLER * edit.filler_tokens
    if edit.kind == "truncate":
        if edit.unit > n:
            raise ValueError(f"cannot keep {edit.unit} units of a CoT with {n}")
        return "".join(u.text for u in units[: edit.unit])
    if edit.unit >= n:
        raise ValueError(f"unit {edit.unit} does not exist in a CoT with {n} units")
    before = "".join(u.text for u in units[: edit.unit])
    rest = "".join(u.text for u in units[edit.unit + 1 :]) if edit.keep_rest else ""
    if edit.kind == "delete":
        if before == "" and rest:
            rest = rest.lstrip()  # a CoT does not start with the whitespace that led a unit
        return before + rest
    original = units[edit.unit].text
    leading = original[: len(original) - len(original.lstrip())]
    text = edit.text if edit.text[:1].isspace() or not before else leading + edit.text
    return before + text + rest


def forced_answer_prefix(cot: str) -> str:
    """The text the model continues when it must answer directly: the CoT, then ``Answer:``
    on a line of its own."""
    if not cot.strip():
        return ANSWER_PREFIX
    return cot.rstrip(" \t") + ("" if cot.endswith("\n") else "\n") + ANSWER_PREFIX


# ---------------------------------------------------------------------------------------------
# Requests, results, engines


@dataclass(kw_only=True)
class ContinuationRequest:
    """Continue `prompt` + `prefix` (text only, so any engine can serve it)."""

    id: str
    prompt: str
    """The rendered prompt (chat template applied, ends where the assistant turn starts)."""
    prefix: str
    """The start of the assistant turn: the edited CoT."""
    gold: str | None = None
    """The gold answer, to grade the answer; None: only read it."""
    force_answer: bool = False
    """Append ``Answer:`` (`forced_answer_prefix`) and generate only the answer."""


@dataclass(kw_only=True)
class Continuation:
    """What a model wrote after one request's prefix, and the answer read from it."""

    request_id: str
    sample: int
    """0..samples-1 for the same request."""
    text: str = ""
    """The generated text only."""
    completion: str = ""
    """Prefix (with the forced ``Answer:`` if any) + generated text: the whole assistant turn."""
    answer: str | None = None
    outcome: str = "format_failure"
    """``correct`` / ``wrong`` / ``format_failure`` (against the gold answer; without one,
    ``wrong`` means only that an answer was read)."""
    generated_tokens: int = 0
    error: str | None = None
    """Why the engine failed on this request (then nothing was generated)."""


@dataclass(kw_only=True)
class ContinuationSettings:
    """Sampling for continuations; recorded with every figure computed from them."""

    max_new_tokens: int = 160
    """Tokens for a free continuation."""
    answer_tokens: int = 10
    """Tokens for a forced answer."""
    temperature: float = 0.0
    top_p: float = 1.0
    samples: int = 1
    """Continuations per request."""
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        # SamplingConfig owns the checks of the shared fields.
        SamplingConfig(
            max_new_tokens=min(self.max_new_tokens, self.answer_tokens), temperature=self.temperature,
            top_p=self.top_p, samples_per_problem=self.samples, batch_size=self.batch_size, seed=self.seed,
        )  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)


def read_answer(request: ContinuationRequest, generated: str) -> tuple[str, str | None, str]:
    """``(completion, answer, outcome)`` for a request and the text generated after it.

    A forced answer is read from the forced line only (anything the model writes on later
    lines is ignored); a free continuation from the whole assistant turn.
    """
    if request.force_answer:
        prefix = forced_answer_prefix(request.prefix)
        completion = prefix + generated
        checked_text = ANSWER_PREFIX + generated.split("\n", 1)[0]
    else:
        completion = request.prefix + generated
        checked_text = completion
    if request.gold is None:
        answer = extract_answer(checked_text).answer
        return completion, answer, "format_failure" if answer is None else "wrong"
    check = check_against_gold(checked_text, request.gold)
    return completion, check.answer, check.outcome


class ContinuationEngine(Protocol):
    """Continues prompts from prefixes; see the module docstring."""

    name: str

    def continue_batch(self, requests: list[ContinuationRequest], settings: ContinuationSettings) -> list[Continuation]:
        """`settings.samples` continuations per request, request-major order."""
        ...


def _failed(request: ContinuationRequest, sample: int, error: str) -> Continuation:
    return Continuation(request_id=request.id, sample=sample, error=error)


class FunctionContinuationEngine:
    """An engine backed by a function ``(request, sample) -> generated text``.

    For tests and stubs (a fixed answer distribution), and to adapt any other generator.
    Generated tokens are counted as whitespace-separated words unless `count_tokens` is given.
    """

    def __init__(self, generate: Callable[[ContinuationRequest, int], str], *, name: str = "function", count_tokens: Callable[[str], int] | None = None):
        self.generate = generate
        self.name = name
        self.count_tokens = count_tokens or word_count

    def continue_batch(self, requests: list[ContinuationRequest], settings: ContinuationSettings) -> list[Continuation]:
        results = []
        for request in requests:
            for sample in range(settings.samples):
                try:
                    text = self.generate(request, sample)
                except Exception as e:  # a failed item is recorded, never a crash
                    results.append(_failed(request, sample, f"{type(e).__name__}: {e}"))
                    continue
                completion, answer, outcome = read_answer(request, text)
                results.append(
                    Continuation(
                        request_id=request.id, sample=sample, text=text, completion=completion,
                        answer=answer, outcome=outcome, generated_tokens=self.count_tokens(text),
                    )
                )  # fmt: skip
        return results


class HFContinuationEngine:
    """Any Hugging Face causal LM, batched with left padding (as `dca.rollout`).

    Seeding: ``torch.manual_seed(settings.seed)`` at the start of each `continue_batch` call,
    so the same calls in the same order give the same continuations on the CPU.
    """

    def __init__(self, model, tokenizer, *, name: str = ""):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "hf")

    def continue_batch(self, requests: list[ContinuationRequest], settings: ContinuationSettings) -> list[Continuation]:
        import torch  # heavy: torch loads only when a model runs

        torch.manual_seed(settings.seed)
        jobs = [(r, s) for r in requests for s in range(settings.samples)]
        # Forced answers and free continuations need different lengths: batch them apart,
        # then restore request order.
        by_index: dict[int, Continuation] = {}
        for force in (True, False):
            kind = [i for i, (request, _) in enumerate(jobs) if request.force_answer == force]
            for start in range(0, len(kind), settings.batch_size):
                by_index.update(self._run(kind[start : start + settings.batch_size], jobs, settings))
        return [by_index[i] for i in range(len(jobs))]

    def _run(self, indices: list[int], jobs, settings: ContinuationSettings) -> dict[int, Continuation]:
        tokenizer = self.tokenizer
        batch = [jobs[i] for i in indices]
        force = batch[0][0].force_answer
        texts = [r.prompt + (forced_answer_prefix(r.prefix) if r.force_answer else r.prefix) for r, _ in batch]
        try:
            new_ids = generate_batch(
                self.model,
                tokenizer,
                texts,
                max_new_tokens=settings.answer_tokens if force else settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
            )
        except Exception as e:  # recorded per continuation, counted by the caller
            return {i: _failed(r, s, f"{type(e).__name__}: {e}") for i, (r, s) in zip(indices, batch)}
        out: dict[int, Continuation] = {}
        for i, (request, sample), ids in zip(indices, batch, new_ids):
            text = tokenizer.decode(ids, skip_special_tokens=True)
            completion, answer, outcome = read_answer(request, text)
            out[i] = Continuation(
                request_id=request.id, sample=sample, text=text, completion=completion,
                answer=answer, outcome=outcome, generated_tokens=len(ids),
            )  # fmt: skip
        return out


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two extracted answers are the same value (math_verify), None never equal."""
    if a is None or b is None:
        return False
    return a == b or check_answer(f"{ANSWER_PREFIX} {a}", b).outcome == "correct"


__all__ = [
    "CoT",
    "CoTEdit",
    "Continuation",
    "ContinuationEngine",
    "ContinuationRequest",
    "ContinuationSettings",
    "EDIT_KINDS",
    "FILLER",
    "FunctionContinuationEngine",
    "HFContinuationEngine",
    "answers_equal",
    "apply_edit",
    "forced_answer_prefix",
    "read_answer",
    "split_cot",
]
