"""Typed records that flow between pipeline stages.

Every record is a keyword-only dataclass of plain data, so that each stage can run alone and
its output can be written to, and read back from, JSON-lines (`write_jsonl` / `read_jsonl`).
The pipeline (see DESIGN.md):

    Problem --policy--> Trace --segment--> Unit[] --reviewers--> Review x k --> Consensus
                                                                                  |
                           sequence advantage ---------------------------------> Credit

Character offsets are Python string indices (code points) into the text they refer to;
spans are half-open ``[start, end)``. Unit and step indices are 0-based.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, TypeVar

# ---------------------------------------------------------------------------------------------
# Label vocabularies (the review protocol's closed sets)

#: What a step does in the text.
FUNCTIONS = (
    "given_fact",  # restates a fact from the problem
    "task_statement",  # restates what is asked
    "plan",  # says how it will proceed
    "computation",  # computes a value
    "verification",  # checks something already computed
    "backtracking",  # abandons or revises an earlier step
    "conclusion",  # states the final answer
    "other",
)

#: What a step contributed to the outcome.
CONTRIBUTIONS = (
    "solved",  # produced the final answer
    "essential",  # on the solution path: the answer depends on it
    "indirect",  # helped (restated a needed fact, the task) without computing on the path
    "irrelevant",  # the answer does not depend on it (distractors, padding, needless checks)
    "failed_attempt",  # an approach that was tried and abandoned
    "error",  # a wrong statement or computation
    "unverified",  # the reviewer could not check it (no number, no match either way); see UNVERIFIED
)

#: The contribution of a unit a reviewer could not check (the reference reviewer's units with
#: no quantity it can match). It is not a judgement: consumers treat it as a missing label
#: (credit neither credits nor blames it; `dca.credit`).
UNVERIFIED = "unverified"

#: Contributions whose tokens receive credit under the `mask`/`conserve` policies by default.
USEFUL_CONTRIBUTIONS = ("solved", "essential", "indirect")

#: Outcome of checking a trace's answer against the gold answer.
OUTCOMES = ("correct", "wrong", "format_failure", "judge_failed")

#: `Review.status`: a usable review, or a failed one (with its `error`).
REVIEW_STATUSES = ("ok", "failed")

#: `Operation.op`: the arithmetic of a problem's computation graph.
OPERATORS = ("+", "-", "*", "/")

#: `Edit.status`.
EDIT_STATUSES = ("edited", "unchanged", "skipped")


# ---------------------------------------------------------------------------------------------
# Problems


@dataclass(kw_only=True)
class Fact:
    """One sentence of a problem that states a quantity."""

    id: str
    """Stable id within the problem, e.g. ``"f0"`` (needed) or ``"d1"`` (distractor)."""
    text: str
    """The sentence as it appears in the question."""
    value: float
    """The quantity the sentence states."""
    entity: str = ""
    """Who or what the quantity belongs to, e.g. ``"Ava's apples"``."""


@dataclass(kw_only=True)
class Operation:
    """One node of a synthetic problem's computation graph."""

    id: str
    """Stable id within the problem, e.g. ``"v0"``; the last operation yields the answer."""
    op: str
    """One of `OPERATORS` (``+ - * /``)."""
    inputs: list[str]
    """Ids of the needed facts or earlier operations it combines, in operand order (a
    distractor, a later operation or an unknown id is refused on read)."""
    value: float
    """The (integer) result."""
    description: str = ""
    """What the value means in words, e.g. ``"the apples Ava has left"``."""


@dataclass(kw_only=True)
class ReferenceStep:
    """One line of a reference solution (GSM8K) with its calculator annotations."""

    text: str
    """The line with ``<<...>>`` annotations removed."""
    expressions: list[str] = field(default_factory=list)
    """The annotated expressions, e.g. ``["48/2"]``."""
    values: list[float] = field(default_factory=list)
    """The annotated results, e.g. ``[24.0]``."""


@dataclass(kw_only=True)
class Problem:
    """A question with a gold answer and, where known, its causal structure."""

    id: str
    """Unique id, e.g. ``"synthetic-s0-00012"`` or ``"gsm8k-test-00007"``."""
    source: str
    """``"synthetic"``, ``"gsm8k"`` or the file it came from."""
    question: str
    """The full question text shown to the assistant."""
    answer: str
    """The gold final answer as a plain string, e.g. ``"18"``."""
    facts: list[Fact] = field(default_factory=list)
    """Facts the solution needs (synthetic problems)."""
    distractors: list[Fact] = field(default_factory=list)
    """Facts that are irrelevant to the question (synthetic problems)."""
    operations: list[Operation] = field(default_factory=list)
    """The computation graph in evaluation order (synthetic problems)."""
    intermediate_values: list[float] = field(default_factory=list)
    """Every value on the solution path, the answer last."""
    reference_steps: list[ReferenceStep] = field(default_factory=list)
    """Reference solution lines (GSM8K)."""
    domain: str = "arithmetic"
    """Problem family, used to report generalization per domain."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Generator settings (seed, difficulty knobs) or loader details."""


# ---------------------------------------------------------------------------------------------
# Traces and their analysis


@dataclass(kw_only=True)
class Trace:
    """One assistant completion for one problem, with its outcome."""

    id: str
    """Unique id, e.g. ``"<problem id>/g3"`` for the fourth sample in a group."""
    problem_id: str
    prompt: str
    """The prompt text exactly as the model saw it (chat template applied)."""
    completion: str
    """The decoded completion (special tokens removed)."""
    completion_token_ids: list[int] = field(default_factory=list)
    """Token ids of the completion as generated, without padding."""
    answer: str | None = None
    """The extracted final answer, or None when none could be extracted."""
    outcome: str = "format_failure"
    """One of `OUTCOMES` (``judge_failed``: an open-ended task's judge gave no verdict, no reward)."""
    reward: float = 0.0
    """Outcome reward from the verifier."""
    advantage: float | None = None
    """Sequence-level (group-normalized) advantage, when the trace was part of a group."""
    group: str | None = None
    """Id shared by the samples drawn for the same prompt in one step."""
    model: str = ""
    step: int | None = None
    """Training step at which the trace was sampled."""


@dataclass(kw_only=True)
class Unit:
    """A pre-split span of a completion (sentence, line or clause)."""

    index: int
    start: int
    """Character offset of the first character in the completion."""
    end: int
    """Character offset one past the last character."""
    text: str
    """``completion[start:end]``; whitespace between units belongs to the following unit's
    leading edge or the preceding unit's trailing edge, never to no unit."""


@dataclass(kw_only=True)
class Step:
    """A reviewer's group of contiguous units with its labels."""

    index: int
    first_unit: int
    last_unit: int
    """Inclusive range of unit indices."""
    function: str
    """One of `FUNCTIONS`."""
    contribution: str
    """One of `CONTRIBUTIONS`."""
    depends_on: list[int] = field(default_factory=list)
    """Indices of earlier steps this step uses."""
    reason: str = ""
    """One line saying why."""


@dataclass(kw_only=True)
class DialogueTurn:
    """One turn of a dialogue review (`dca.review.dialogue`): the reviewer's question about a
    unit, or the assistant's reply to it."""

    role: str
    """``"reviewer"`` (a question) or ``"assistant"`` (the reply)."""
    unit: int | None
    """The unit the question is about (None when the reviewer named no valid unit)."""
    text: str
    """The question or reply, as written (untrusted model text; cut to a bounded length)."""


@dataclass(kw_only=True)
class Review:
    """One reviewer's analysis of one trace."""

    trace_id: str
    reviewer: str
    """The configured reviewer name."""
    units: list[Unit]
    """The units the reviewer was shown."""
    steps: list[Step] = field(default_factory=list)
    status: str = "ok"
    """``"ok"`` or ``"failed"``; a failed review carries no steps and an `error`."""
    error: str | None = None
    """Why the review failed."""
    unreviewed_units: list[int] = field(default_factory=list)
    """Units that no step covers."""
    usage: dict[str, float] = field(default_factory=dict)
    """Tokens in/out, cost, latency, cache hit."""
    metadata: dict[str, Any] = field(default_factory=dict)
    dialogue: list[DialogueTurn] = field(default_factory=list)
    """Dialogue reviews (protocol ``dca-review/2``): the questions asked before answering and
    the assistant's replies, in order; empty for one-shot reviews (and in records written
    before dialogues existed, which load unchanged)."""

    @classmethod
    def failed(cls, trace_id: str, reviewer: str, units: list[Unit], error: str, *, metadata: dict[str, Any] | None = None) -> Review:
        """A failed review: no steps, every unit unreviewed (`dca.review.base.failed_review`
        builds the runner's, with a failure kind and redaction)."""
        return cls(
            trace_id=trace_id, reviewer=reviewer, units=units, status="failed", error=error,
            unreviewed_units=[u.index for u in units], metadata=dict(metadata or {}),
        )  # fmt: skip

    def unit_contributions(self) -> list[str | None]:
        """The contribution label of each unit (None where no step covers it)."""
        labels: list[str | None] = [None] * len(self.units)
        for step in self.steps:
            for i in range(step.first_unit, step.last_unit + 1):
                labels[i] = step.contribution
        return labels


@dataclass(kw_only=True)
class Consensus:
    """Several reviews of one trace merged unit by unit."""

    trace_id: str
    reviewers: list[str]
    rule: str
    """``"unanimous"``, ``"majority"`` or ``"at-least-M"``."""
    units: list[Unit]
    steps: list[Step] = field(default_factory=list)
    """Contiguous agreed units with the agreed label."""
    unit_votes: list[dict[str, str]] = field(default_factory=list)
    """Per unit, reviewer name -> contribution label."""
    unit_agreement: list[float] = field(default_factory=list)
    """Per unit, the share of reviewers that voted for the winning label."""
    disputed_units: list[int] = field(default_factory=list)
    failed_reviews: int = 0
    fraction_agreed: float = 0.0

    def unit_contributions(self) -> list[str | None]:
        """The agreed contribution of each unit (None where disputed or uncovered)."""
        labels: list[str | None] = [None] * len(self.units)
        for step in self.steps:
            for i in range(step.first_unit, step.last_unit + 1):
                labels[i] = step.contribution
        return labels


@dataclass(kw_only=True)
class Credit:
    """Per-token advantages for one trace's completion tokens."""

    trace_id: str
    policy: str
    """``uniform``, ``mask``, ``conserve``, ``random``, ``signed`` or ``signed-random``."""
    sequence_advantage: float
    token_advantages: list[float]
    """One value per completion token (same length as `Trace.completion_token_ids`)."""
    credited_tokens: int
    """Tokens that received a non-zero weight."""
    fallback: str | None = None
    """Why the policy fell back to ``uniform`` (failed review, nothing credited or blamed), if
    it did."""
    unit_advantages: list[float] = field(default_factory=list)
    """Per unit of the review, the sum of its tokens' advantages (empty without a review), so
    a viewer can show where the credit went on the text."""

    @property
    def uniform_sum(self) -> float:
        return self.sequence_advantage * len(self.token_advantages)


# ---------------------------------------------------------------------------------------------
# Edits (`dca edit` -> `dca sft`)


@dataclass(kw_only=True)
class EditSpan:
    """One piece of an edit: kept or inserted text of the edited completion, or dropped text
    of the original."""

    kind: str
    """``"kept"``, ``"dropped"`` or ``"inserted"`` (a bridge)."""
    text: str
    """Kept and inserted: the text as it stands in the edited completion (a kept span may
    differ from its source by the whitespace and sentence-boundary repairs; a bridge starts
    with the space that joins it). Dropped: the original text. Kept and inserted spans tile
    the edited completion."""
    start: int
    end: int
    """Span in the edited completion; a dropped span is empty (``start == end``) at the place
    where its text was."""
    source_start: int | None = None
    source_end: int | None = None
    """Span in the original completion (kept and dropped spans; None for a bridge)."""
    units: list[int] = field(default_factory=list)
    """Indices of the original units it covers (kept and dropped spans)."""
    contributions: list[str] = field(default_factory=list)
    """Dropped spans: the labels of the dropped units (``"unlabelled"`` where none)."""
    source: str = ""
    """Inserted spans: ``"template"`` or the bridge writer's name."""


@dataclass(kw_only=True)
class Edit:
    """One solved trace edited for SFT (or skipped, with the reason)."""

    trace_id: str
    problem_id: str
    arm: str
    """One of `dca.edit.ARMS`."""
    mode: str
    """One of `dca.edit.MODES` (``"none"`` for the ``rft`` arm)."""
    labels_from: str
    """Where the labels came from, e.g. ``"consensus majority (a, b, c)"`` or ``"review oracle"``."""
    status: str
    """``"edited"`` (something was dropped), ``"unchanged"`` (nothing to drop, or the edit was
    refused) or ``"skipped"`` (not trained on: see `reason`)."""
    reason: str = ""
    """Why the trace was skipped or left unchanged."""
    prompt: list[dict[str, str]] = field(default_factory=list)
    """The chat prompt (system + user messages) the completion answers."""
    original: str = ""
    """The trace's completion."""
    completion: str = ""
    """The edited completion (the original where unchanged; empty where skipped)."""
    answer: str | None = None
    """The final answer, the same in both."""
    spans: list[EditSpan] = field(default_factory=list)
    """Kept, dropped and inserted pieces in order of the edited text."""
    units: int = 0
    """Units of the original completion."""
    dropped_units: list[int] = field(default_factory=list)
    refused_steps: list[int] = field(default_factory=list)
    """Steps whose drop was refused because a kept step depends on them."""
    refused_units: list[int] = field(default_factory=list)
    """Units of the refused steps."""
    bridges: int = 0
    bridge_fallbacks: list[str] = field(default_factory=list)
    """Per LLM bridge that fell back to the template: why (``"too long"``, ``"new number
    7"``, ``"call failed: ..."``)."""
    useful_steps: int = 0
    """Steps labelled with a `USEFUL_CONTRIBUTIONS` label (the insights)."""
    tokens_before: int = 0
    tokens_after: int = 0
    """Completion tokens, counted with the edit set's token counter."""


# ---------------------------------------------------------------------------------------------
# JSON-lines I/O

R = TypeVar("R")


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict."""
    return dataclasses.asdict(record)


class RecordError(ValueError):
    """A record that does not fit its type: wrong field type, unknown label, index out of range."""


def _type_name(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _build(tp: Any, value: Any, where: str) -> Any:
    """Rebuild a value of (possibly nested, possibly optional) type `tp`, checking its JSON type.

    `where` names the field in errors (``steps[2].last_unit``)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise RecordError(f"{where} is null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _build(arg, value, where)
            except RecordError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} should be a list, not {_type_name(value)}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_build(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} should be an object, not {_type_name(value)}")
        _, value_tp = typing.get_args(tp) or (str, Any)
        return {k: _build(value_tp, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecordError(f"{where} should be an object ({tp.__name__}), not {_type_name(value)}")
        return _from_dict(tp, value, where + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where} should be true or false, not {_type_name(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where} should be an integer, not {_type_name(value)} ({json.dumps(value)[:40]})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where} should be a number, not {_type_name(value)} ({json.dumps(value)[:40]})")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecordError(f"{where} should be a string, not {_type_name(value)} ({json.dumps(value)[:40]})")
        return value
    return value


def _one_of(value: Any, allowed: Iterable[str], where: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise RecordError(f"{where} is {json.dumps(value)[:40]}, not one of {', '.join(allowed)}")


def _check_indices(values: Iterable[int], n: int, where: str, what: str = "unit") -> None:
    for i in values:
        if not 0 <= i < n:
            raise RecordError(f"{where} names {what} {i}, but there are {n} {what}s (0-{n - 1})" if n else f"{where} names {what} {i}, but there are none")


def _check_units(units: list[Unit], where: str) -> None:
    for i, u in enumerate(units):
        if u.index != i:
            raise RecordError(f"{where}units[{i}].index is {u.index}, expected {i} (units are numbered in order from 0)")
        if not 0 <= u.start <= u.end:
            raise RecordError(f"{where}units[{i}] spans [{u.start}, {u.end}), not a span of the completion")


def _check_steps(steps: list[Step], n_units: int, where: str) -> None:
    for k, s in enumerate(steps):
        at = f"{where}steps[{k}]"
        _one_of(s.function, FUNCTIONS, f"{at}.function")
        _one_of(s.contribution, CONTRIBUTIONS, f"{at}.contribution")
        if s.first_unit > s.last_unit:
            raise RecordError(f"{at} runs from unit {s.first_unit} back to unit {s.last_unit}")
        _check_indices((s.first_unit, s.last_unit), n_units, f"{at}", "unit")
        if any(d < 0 for d in s.depends_on):
            raise RecordError(f"{at}.depends_on holds a negative step index")


def _check_operations(problem: Problem, where: str) -> None:
    """Each operation is one of `OPERATORS` over needed facts and earlier operations (the
    evaluation order the oracle and the gold solutions walk)."""
    known = {f.id for f in problem.facts}
    distractors = {d.id for d in problem.distractors}
    for k, operation in enumerate(problem.operations):
        at = f"{where}operations[{k}]"
        _one_of(operation.op, OPERATORS, f"{at}.op")
        for j, name in enumerate(operation.inputs):
            if name in known:
                continue
            what = "a distractor, not a needed fact" if name in distractors else "no fact or earlier operation"
            raise RecordError(f"{at}.inputs[{j}] is {json.dumps(name)[:40]}, which names {what}")
        known.add(operation.id)


def _validate(record: Any, where: str) -> None:
    """Checks beyond the JSON types: label vocabularies, index ranges, lengths."""
    if isinstance(record, Problem):
        _check_operations(record, where)
    elif isinstance(record, Trace):
        _one_of(record.outcome, OUTCOMES, f"{where}outcome")
        if any(t < 0 for t in record.completion_token_ids):
            raise RecordError(f"{where}completion_token_ids holds a negative token id")
    elif isinstance(record, Review):
        _one_of(record.status, REVIEW_STATUSES, f"{where}status")
        n = len(record.units)
        _check_steps(record.steps, n, where)
        _check_indices(record.unreviewed_units, n, f"{where}unreviewed_units")
    elif isinstance(record, Consensus):
        n = len(record.units)
        _check_steps(record.steps, n, where)
        _check_indices(record.disputed_units, n, f"{where}disputed_units")
        for name, values in (("unit_votes", record.unit_votes), ("unit_agreement", record.unit_agreement)):
            if values and len(values) != n:
                raise RecordError(f"{where}{name} has {len(values)} entries for {n} units")
        for i, votes in enumerate(record.unit_votes):
            for reviewer, label in votes.items():
                _one_of(label, CONTRIBUTIONS, f"{where}unit_votes[{i}].{reviewer}")
        if record.failed_reviews < 0:
            raise RecordError(f"{where}failed_reviews is negative")
        if not 0.0 <= record.fraction_agreed <= 1.0:
            raise RecordError(f"{where}fraction_agreed is {record.fraction_agreed}, not a fraction in [0, 1]")
    elif isinstance(record, Credit):
        if not 0 <= record.credited_tokens <= len(record.token_advantages):
            raise RecordError(f"{where}credited_tokens is {record.credited_tokens} for {len(record.token_advantages)} tokens")
    elif isinstance(record, Edit):
        _one_of(record.status, EDIT_STATUSES, f"{where}status")
        for k, span in enumerate(record.spans):
            _one_of(span.kind, ("kept", "dropped", "inserted"), f"{where}spans[{k}].kind")
    if isinstance(record, (Review, Consensus)):
        _check_units(record.units, where)


#: Keys that only one record kind has: they name the kind a file holds, for the error message.
_KIND_KEYS = (
    ("token_advantages", "Credit"),
    ("unit_votes", "Consensus"),
    ("labels_from", "Edit"),
    ("reviewer", "Review"),
    ("completion", "Trace"),
    ("question", "Problem"),
)


def _a(word: str) -> str:
    return ("an " if word[0] in "AEIOU" else "a ") + word


def record_kind(data: dict[str, Any]) -> str | None:
    """The record kind whose distinctive key `data` has (None when none does)."""
    for key, kind in _KIND_KEYS:
        if key in data:
            return kind
    return None


def _from_dict(cls: type[R], data: dict[str, Any], where: str = "") -> R:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = required - set(data)
    if (unknown or missing) and not where:
        kind = record_kind(data)
        if kind is not None and kind != cls.__name__:
            raise RecordError(f"this is {_a(kind)} record, not {_a(cls.__name__)} record; is it the right file?")
    if unknown:
        raise RecordError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    if missing:
        raise RecordError(f"{where or cls.__name__ + ' '}is missing the field(s) {', '.join(sorted(missing))}")
    hints = typing.get_type_hints(cls)
    record = cls(**{k: _build(hints[k], v, f"{where}{k}") for k, v in data.items()})
    _validate(record, where)
    return record


def from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """Rebuild a record from `to_dict` output, validated: JSON types, label vocabularies and
    index ranges are checked, unknown keys are an error (a `RecordError`, a ValueError)."""
    if not isinstance(data, dict):
        raise RecordError(f"a {cls.__name__} record is a JSON object, not {_type_name(data)}")
    return _from_dict(cls, data)
