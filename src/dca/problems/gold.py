"""Gold chains of thought for synthetic problems, optionally padded with irrelevant steps.

A gold CoT walks the problem in question order: it restates each needed fact (with the
person named, never a pronoun), computes each operation once its inputs are stated, with an
explicit equation ("Ava now has 12 - 5 = 7 apples."), and ends with the line ``Answer: N``.

Padding, for training and for testing reviewers: at each slot between two useful steps, with
probability `irrelevant_rate`, one irrelevant step is inserted, drawn from those that make
sense there: restating a distractor fact, computing with two distractor numbers (or one
and a small constant), or a needless check of an operation already computed ("Let me
double-check: 7 + 5 = 12.").

Padding by kind (`PaddingRates`, the micro world's gold CoTs): instead of one rate, each of
three kinds has its own. At each slot between two useful steps, a restatement of a distractor
fact is inserted with probability ``restatement``, then a computation with distractor numbers
with probability ``off_path``; right after each computation, a *performative check* that
repeats its equation ("Check: 3 + 4 = 7.") with probability ``check``. The oracle labels all
three irrelevant (``given_fact``, ``computation``, ``verification``; see `padding_kind`).

Every step is exactly one sentence. `GoldCoT.text` is the steps joined by single spaces,
except that the final ``Answer: N`` step is on its own line (joined by one newline); the
`GoldCoT.step_spans` method gives each step's character span in the text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .answer import ANSWER_PREFIX
from ..records import Fact, Operation, Problem

#: Roles of gold steps; the first three are useful, the next three irrelevant.
ROLES = (
    "given_fact",
    "computation",
    "conclusion",
    "irrelevant_fact",
    "irrelevant_computation",
    "needless_check",
    "performative_check",
)
USEFUL_ROLES = ("given_fact", "computation", "conclusion")

# Inverse operations, for needless checks: c = a op b is checked as c inv b = a.
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


@dataclass(kw_only=True)
class GoldStep:
    """One sentence of a gold CoT."""

    text: str
    role: str
    """One of `ROLES`."""


@dataclass(kw_only=True)
class GoldCoT:
    """A gold chain of thought and its steps."""

    text: str
    """The steps joined by spaces; the last (``Answer: N``) on its own line."""
    steps: list[GoldStep]

    def step_spans(self) -> list[tuple[int, int]]:
        """Character span ``[start, end)`` of each step in `text`."""
        spans, position = [], 0
        for step in self.steps:
            start = self.text.index(step.text, position)
            spans.append((start, start + len(step.text)))
            position = start + len(step.text)
        return spans


def format_number(value: float) -> str:
    """``12.0`` -> ``"12"``; other values as Python writes them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True, kw_only=True)
class PaddingRates:
    """Probabilities of the three padding kinds (see the module docstring)."""

    restatement: float = 0.0
    """Per slot between useful steps: restate a distractor fact."""
    off_path: float = 0.0
    """Per slot between useful steps: compute with distractor numbers."""
    check: float = 0.0
    """Per computation: repeat its equation as a performative check."""

    def __post_init__(self) -> None:
        for name in ("restatement", "off_path", "check"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"padding rate {name} must lie in [0, 1], got {getattr(self, name)}")


#: Padding kind of each irrelevant gold role, and of each function the oracle gives an
#: irrelevant unit (``verification`` is a check, ``given_fact`` a restatement).
PADDING_KINDS = {
    "irrelevant_fact": "restatement", "irrelevant_computation": "off_path",
    "needless_check": "check", "performative_check": "check",
    "given_fact": "restatement", "computation": "off_path", "verification": "check",
}  # fmt: skip


def padding_kind(role_or_function: str) -> str:
    """``restatement``, ``off_path``, ``check`` or ``other`` for a gold role or an oracle function."""
    return PADDING_KINDS.get(role_or_function, "other")


def render_gold_cot(
    problem: Problem, *, irrelevant_rate: float = 0.0, rng: random.Random, padding: PaddingRates | None = None
) -> GoldCoT:
    """A correct step-by-step solution of a synthetic problem (see the module docstring);
    with `padding`, its per-kind rates replace `irrelevant_rate`."""
    if not 0.0 <= irrelevant_rate <= 1.0:
        raise ValueError(f"irrelevant_rate must lie in [0, 1], got {irrelevant_rate}")
    if not problem.operations or "solution_templates" not in problem.metadata:
        raise ValueError(
            f"problem {problem.id} has no known structure; gold CoTs need synthetic problems "
            "from dca.problems.synthetic.generate_problems"
        )
    values = {f.id: f.value for f in problem.facts} | {o.id: o.value for o in problem.operations}
    useful = _useful_steps(problem, values)

    if padding is not None:
        return _join(_padded_by_kind(problem, useful, values, padding, rng), problem)
    steps: list[GoldStep] = []
    computed: list[Operation] = []
    for step, operation in useful:
        if steps and rng.random() < irrelevant_rate:
            irrelevant = _irrelevant_step(problem, computed, values, rng)
            if irrelevant is not None:
                steps.append(irrelevant)
        steps.append(step)
        if operation is not None:
            computed.append(operation)
    return _join(steps, problem)


def _join(steps: list[GoldStep], problem: Problem) -> GoldCoT:
    steps = [*steps, GoldStep(text=f"{ANSWER_PREFIX} {problem.answer}", role="conclusion")]
    text = " ".join(step.text for step in steps[:-1]) + "\n" + steps[-1].text
    return GoldCoT(text=text, steps=steps)


def _padded_by_kind(
    problem: Problem, useful: list[tuple[GoldStep, Operation | None]], values: dict[str, float], padding: PaddingRates, rng: random.Random
) -> list[GoldStep]:
    """Useful steps with padding of each kind at its own rate (see `PaddingRates`)."""
    steps: list[GoldStep] = []
    for step, operation in useful:
        if steps and problem.distractors:
            if rng.random() < padding.restatement:
                steps.append(GoldStep(text=rng.choice(problem.distractors).text, role="irrelevant_fact"))
            if rng.random() < padding.off_path:
                steps.append(GoldStep(text=_distractor_computation(problem.distractors, rng), role="irrelevant_computation"))
        steps.append(step)
        if operation is not None and rng.random() < padding.check:
            steps.append(GoldStep(text=f"Check: {_equation(operation, values)}.", role="performative_check"))
    return steps


def _useful_steps(
    problem: Problem, values: dict[str, float]
) -> list[tuple[GoldStep, Operation | None]]:
    """Fact restatements and computations in question order, each computation right after
    its last input is available."""
    restatements = problem.metadata["restatements"]
    templates = problem.metadata["solution_templates"]
    steps: list[tuple[GoldStep, Operation | None]] = []
    available: set[str] = set()
    pending = list(problem.operations)
    for fact in problem.facts:
        steps.append((GoldStep(text=restatements[fact.id], role="given_fact"), None))
        available.add(fact.id)
        while pending and all(i in available for i in pending[0].inputs):
            operation = pending.pop(0)
            equation = _equation(operation, values)
            text = templates[operation.id].format(equation=equation)
            steps.append((GoldStep(text=text, role="computation"), operation))
            available.add(operation.id)
    return steps


def _equation(operation: Operation, values: dict[str, float]) -> str:
    a, b = (format_number(values[i]) for i in operation.inputs)
    return f"{a} {operation.op} {b} = {format_number(operation.value)}"


def _irrelevant_step(
    problem: Problem, computed: list[Operation], values: dict[str, float], rng: random.Random
) -> GoldStep | None:
    """One irrelevant step of a kind that the problem and the steps so far allow (None when
    none does: no distractors and nothing computed yet)."""
    kinds = ["needless_check"] if computed else []
    if problem.distractors:
        kinds += ["irrelevant_fact", "irrelevant_computation"]
    if not kinds:
        return None
    kind = rng.choice(kinds)
    if kind == "needless_check":
        operation = rng.choice(computed)
        a, b = (values[i] for i in operation.inputs)
        text = (
            f"Let me double-check: {format_number(operation.value)} "
            f"{_INVERSE[operation.op]} {format_number(b)} = {format_number(a)}."
        )
    elif kind == "irrelevant_fact":
        text = rng.choice(problem.distractors).text
    else:
        text = _distractor_computation(problem.distractors, rng)
    return GoldStep(text=text, role=kind)


def _distractor_computation(distractors: list[Fact], rng: random.Random) -> str:
    if len(distractors) >= 2:
        first, second = rng.sample(distractors, 2)
        a, b = format_number(first.value), format_number(second.value)
        total = format_number(first.value + second.value)
        return f"Together, {first.entity} and {second.entity} make {a} + {b} = {total}."
    (only,) = distractors
    n = format_number(only.value)
    return f"Twice {only.entity} would be {n} * 2 = {format_number(only.value * 2)}."
