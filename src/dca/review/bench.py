"""The reviewer benchmark behind `dca bench-reviewers`: does a reviewer find the first wrong
step of a solution?

Items follow ProcessBench's format (Zheng et al., 2024): a ``problem``, its solution as a
list of ``steps``, and a ``label``, the index of the first wrong step or -1 when every step
is right. Three sources:

- **Planted errors**, built as ProcessBench and PRMBench build theirs: take a correct
  solution, change one step's result and propagate the change through every later step that
  uses it (their arithmetic stays right, their inputs are now wrong), so the first wrong step
  is known. Correct solutions are GSM8K reference solutions (their ``<<a*b=c>>``
  annotations say which expression each result comes from, which drives the propagation;
  the steps shown are the lines without annotations, ending in GSM8K's ``#### N``) and gold
  CoTs of synthetic problems (their operation graph drives the propagation; a share of
  irrelevant steps is mixed in). Each problem gives two items: the solution as it is (label
  -1) and the planted one, so both halves of the metric are measured on the same problems.
- **Real mistakes** (``mistakes``, `dca.review.mistakes`): a model's own wrong solutions of
  synthetic problems, the first wrong step taken from the problem's known structure, each
  with its mistake kind (scored per kind too).
- **Files in ProcessBench's format** (JSON list or JSON lines; extra fields are ignored),
  such as the published ProcessBench splits. Such problems have no reference solution or
  known structure, so only LLM reviewers can review them (the others fail, counted).

A reviewer sees the solution as one unit per step (the step's text and the newline after
it). Its prediction is the first unit it labels ``error``, or -1 when none; a failed review
counts as a wrong prediction and is reported. The metric is ProcessBench's: accuracy on the
erroneous items (prediction == label), accuracy on the correct items (prediction == -1),
and F1, their harmonic mean. It departs from ProcessBench in the unit of judgement only in
that our reviewers label contributions, so a step labelled ``failed_attempt`` (an
abandoned line of work) is not taken as the error.

Reviewers are the ones `dca review` runs: declared in a reviewers YAML file (any backend),
or the built-in ``reference`` and ``oracle`` by name.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..llm.cache import ReviewCache
from ..measures import NUMBER, evaluate, format_number, number_value
from ..problems.answer import check_answer
from ..problems.gold import render_gold_cot
from ..records import Operation, Problem, Review, Trace, Unit
from .base import ReviewItem
from .batch import review_items
from .config import ReviewerSpec

__all__ = [
    "BenchItem",
    "bench_review_items",
    "first_error",
    "planted_gsm8k",
    "planted_synthetic",
    "read_processbench",
    "run_bench",
    "score",
    "write_processbench",
]


@dataclass(kw_only=True)
class BenchItem:
    """One solution with the index of its first wrong step (-1: none)."""

    id: str
    source: str
    """``planted-gsm8k``, ``planted-synthetic`` or the name of the file it came from."""
    problem: Problem
    steps: list[str]
    label: int
    planted: dict[str, Any] = field(default_factory=dict)
    """For planted items: the step, the value it had and the value planted; for real
    mistakes: why the first wrong step is wrong."""
    kind: str = ""
    """For real mistakes (`dca.review.mistakes`): the first mistake's kind; "" otherwise."""


# ---------------------------------------------------------------------------------------------
# Planting errors


def _key(value: float) -> float:
    return round(value, 4)


def _perturb(value: float, rng: random.Random, avoid: set[float]) -> float | None:
    """A plausible wrong result: off by a small amount (or doubled / halved), positive, and
    none of the values in `avoid` (which would make it look right)."""
    integer = float(value).is_integer()
    for _ in range(40):
        kind = rng.random()
        if kind < 0.7:
            step = rng.choice([1, 2, 3, 4, 5, 10]) if integer else rng.choice([0.5, 1, 0.25, 2])
            new = value + rng.choice([-1, 1]) * step
        else:
            new = value * 2 if rng.random() < 0.5 else value / 2
            if integer and not float(new).is_integer():
                continue
        if new > 0 and _key(new) != _key(value) and _key(new) not in avoid:
            return new
    return None


def _replace_numbers(text: str, mapping: dict[float, float], *, only: int | None = None) -> str:
    """`text` with each number whose value is a key of `mapping` rewritten to its new value
    (signs kept); with `only`, just the number starting at that offset."""
    pieces, last = [], 0
    for match in NUMBER.finditer(text):
        value = abs(number_value(match))
        if _key(value) not in mapping or (only is not None and match.start() != only):
            continue
        start = match.start() + (1 if match.group("sign") else 0)
        if text[start] == "$":
            start += 1
        pieces.append(text[last:start])
        pieces.append(format_number(mapping[_key(value)], like=match.group(0)))
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


def _result_offset(text: str, value: float) -> int | None:
    """Where a step writes the result `value`: the first such number right after an ``=``,
    else the last mention of it; None when the step does not write it."""
    mentions = [m for m in NUMBER.finditer(text) if _key(abs(number_value(m))) == _key(value)]
    if not mentions:
        return None
    for m in mentions:
        before = text[: m.start()].rstrip(" $")
        if before.endswith("="):
            return m.start()
    return mentions[-1].start()


#: Share of planted errors that change an operand (a wrong input computed right) rather
#: than the result (a wrong computation).
OPERAND_SHARE = 0.3


def _plant_step(
    text: str, expression: str, old: float, rng: random.Random, avoid: set[float]
) -> tuple[str, float, dict[str, Any]] | None:
    """One step made wrong: its result `old` (computed by `expression`) changed, or, for a
    share of steps, one operand changed and the result recomputed from it. Returns the new
    text, the new result and what was planted."""
    result_at = _result_offset(text, old)
    if result_at is None:
        return None
    if rng.random() < OPERAND_SHARE:
        operands = list(NUMBER.finditer(expression))
        if operands:
            match = rng.choice(operands)
            operand = abs(number_value(match))
            mentions = [m for m in NUMBER.finditer(text[:result_at]) if _key(abs(number_value(m))) == _key(operand)]
            new_operand = _perturb(operand, rng, avoid)
            if mentions and new_operand is not None:
                new = evaluate(_replace_numbers(expression, {_key(operand): new_operand}, only=match.start()))
                if new is not None and new > 0 and _key(new) != _key(old) and _key(new) not in avoid:
                    changed = _replace_numbers(text, {_key(old): new}, only=result_at)
                    changed = _replace_numbers(changed, {_key(operand): new_operand}, only=mentions[-1].start())
                    return changed, new, {"kind": "operand", "old_operand": operand, "new_operand": new_operand, "old": old, "new": new}
    new = _perturb(old, rng, avoid)
    if new is None:
        return None
    return _replace_numbers(text, {_key(old): new}, only=result_at), new, {"kind": "result", "old": old, "new": new}


def planted_gsm8k(problems: list[Problem], *, seed: int = 0) -> list[BenchItem]:
    """For each GSM8K problem with annotated steps: its reference solution (label -1) and the
    same with one step's result changed and propagated (label = that step)."""
    rng = random.Random(seed)
    items = []
    for problem in problems:
        planted = _plant_gsm8k(problem, rng)
        if planted is None:
            continue
        correct = [s.text for s in problem.reference_steps] + [f"#### {problem.answer}"]
        items += _twins(problem, "planted-gsm8k", correct, planted)
    return items


def _twins(problem: Problem, source: str, correct: list[str], planted: tuple[list[str], int, dict[str, Any]]) -> list[BenchItem]:
    """The correct solution (label -1) and its planted twin (label = the planted step)."""
    steps, index, details = planted
    return [
        BenchItem(id=f"{problem.id}/correct", source=source, problem=problem, steps=correct, label=-1),
        BenchItem(id=f"{problem.id}/planted", source=source, problem=problem, steps=steps, label=index, planted={"step": index, **details}),
    ]


def _plant_gsm8k(problem: Problem, rng: random.Random) -> tuple[list[str], int, dict[str, Any]] | None:
    steps = problem.reference_steps
    candidates = [
        (i, j)
        for i, step in enumerate(steps)
        for j, value in enumerate(step.values)
        if step.text.strip() and _result_offset(step.text, value) is not None
    ]
    if not candidates:
        return None
    i, j = rng.choice(candidates)
    old = steps[i].values[j]
    avoid = {_key(v) for v in problem.intermediate_values}
    avoid |= {_key(abs(number_value(m))) for m in NUMBER.finditer(problem.question)}
    texts = [s.text for s in steps]
    planted = _plant_step(texts[i], steps[i].expressions[j], old, rng, avoid)
    if planted is None:
        return None
    texts[i], new, details = planted
    mapping = {_key(old): new}
    # Propagate through the annotated expressions after the planted one, in order.
    for si in range(i, len(steps)):
        for ej, (expression, value) in enumerate(zip(steps[si].expressions, steps[si].values)):
            if (si, ej) <= (i, j):
                continue
            rewritten = _replace_numbers(expression, mapping)
            if rewritten == expression:
                continue
            new_value = evaluate(rewritten)
            if new_value is None:
                return None
            if _key(new_value) != _key(value):
                mapping[_key(value)] = new_value
        if si > i:
            texts[si] = _replace_numbers(texts[si], mapping)
    answer = float(problem.intermediate_values[-1])
    final = mapping.get(_key(answer), answer)
    return [*texts, f"#### {format_number(final)}"], i, details


def planted_synthetic(problems: list[Problem], *, seed: int = 0, irrelevant_rate: float = 0.3) -> list[BenchItem]:
    """For each synthetic problem: a gold CoT (label -1) and the same CoT with one
    computation's result changed and propagated through the operation graph."""
    rng = random.Random(seed)
    items = []
    for problem in problems:
        gold = render_gold_cot(problem, irrelevant_rate=irrelevant_rate, rng=rng)
        correct = [s.text for s in gold.steps]
        planted = _plant_synthetic(problem, correct, [s.role for s in gold.steps], rng)
        if planted is None:
            continue
        items += _twins(problem, "planted-synthetic", correct, planted)
    return items


def _apply(operation: Operation, values: dict[str, float]) -> float | None:
    return evaluate(f" {operation.op} ".join(repr(values[i]) for i in operation.inputs))


def _plant_synthetic(
    problem: Problem, steps: list[str], roles: list[str], rng: random.Random
) -> tuple[list[str], int, dict[str, Any]] | None:
    candidates = []
    for index, (text, role) in enumerate(zip(steps, roles)):
        if role != "computation":
            continue
        for operation in problem.operations:
            offset = _result_offset(text, operation.value)
            if offset is not None and text[:offset].rstrip(" $").endswith("="):
                candidates.append((index, operation))
    if not candidates:
        return None
    index, operation = rng.choice(candidates)
    values = {f.id: f.value for f in problem.facts} | {o.id: o.value for o in problem.operations}
    avoid = {_key(v) for v in values.values()} | {_key(d.value) for d in problem.distractors}
    expression = f" {operation.op} ".join(format_number(values[i]) for i in operation.inputs)
    planted = _plant_step(steps[index], expression, operation.value, rng, avoid)
    if planted is None:
        return None
    text, new, details = planted
    mapping = {_key(operation.value): new}
    values[operation.id] = new
    later = problem.operations[problem.operations.index(operation) + 1 :]  # evaluation order
    for other in later:
        recomputed = _apply(other, values)
        if recomputed is None or recomputed <= 0:
            return None
        if _key(recomputed) != _key(other.value):
            mapping[_key(other.value)] = recomputed
            values[other.id] = recomputed
    texts = list(steps)
    texts[index] = text
    for position in range(index + 1, len(texts)):
        texts[position] = _replace_numbers(texts[position], mapping)
    return texts, index, details


# ---------------------------------------------------------------------------------------------
# ProcessBench-format files


def read_processbench(path: str | Path) -> list[BenchItem]:
    """Items from a JSON list or JSON-lines file of ``{problem, steps, label}`` records."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ProcessBench file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("["):
            records = [(n, r) for n, r in enumerate(json.loads(text), 1)]
        else:
            records = [(n, json.loads(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is neither a JSON list nor JSON lines: {e.msg} (line {e.lineno})") from e
    items = []
    for n, record in records:
        where = f"{path}: record {n}"
        if not isinstance(record, dict):
            raise UserError(f"{where} is not an object with problem, steps and label")
        problem, steps, label = record.get("problem"), record.get("steps"), record.get("label")
        if not isinstance(problem, str) or not problem.strip():
            raise UserError(f"{where}: 'problem' must be a non-empty string")
        if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
            raise UserError(f"{where}: 'steps' must be a non-empty list of strings")
        if not isinstance(label, int) or isinstance(label, bool) or not -1 <= label < len(steps):
            raise UserError(f"{where}: 'label' must be -1 or the index of a step (0 to {len(steps) - 1})")
        item_id = str(record.get("id", f"{path.stem}-{n:05d}"))
        items.append(
            BenchItem(
                id=item_id,
                source=path.name,
                problem=Problem(id=item_id, source=path.name, question=problem, answer=str(record.get("answer", ""))),
                steps=[s for s in steps],
                label=label,
            )
        )
    if not items:
        raise UserError(f"{path} holds no items")
    return items


def write_processbench(items: list[BenchItem], path: str | Path) -> None:
    """Items as JSON lines in ProcessBench's format (plus ``source``, ``planted`` and, for
    real mistakes, ``kind``)."""
    with open(path, "w", encoding="utf-8") as f:
        for item in items:
            record = {"id": item.id, "problem": item.problem.question, "steps": item.steps, "label": item.label}
            record |= {"source": item.source, "planted": item.planted} | ({"kind": item.kind} if item.kind else {})
            f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------------------------------
# Running and scoring


def bench_review_items(items: list[BenchItem]) -> list[ReviewItem]:
    """Each item as a trace to review: its steps joined by newlines, one unit per step."""
    review_items = []
    for item in items:
        text = "\n".join(item.steps)
        units, start = [], 0
        for index, step in enumerate(item.steps):
            end = start + len(step) + (1 if index < len(item.steps) - 1 else 0)
            units.append(Unit(index=index, start=start, end=end, text=text[start:end]))
            start = end
        if item.problem.answer:
            check = check_answer(text, item.problem.answer)
            answer, outcome = check.answer, check.outcome
        else:  # ProcessBench items carry no gold answer; the reviewer is not told an outcome
            answer, outcome = None, "unknown"
        trace = Trace(id=item.id, problem_id=item.problem.id, prompt="", completion=text, answer=answer, outcome=outcome)
        review_items.append(ReviewItem(problem=item.problem, trace=trace, units=units))
    return review_items


def first_error(review: Review) -> int | None:
    """The first unit labelled ``error`` (-1: none); None for a failed review."""
    if review.status != "ok":
        return None
    labels = review.unit_contributions()
    return next((i for i, label in enumerate(labels) if label == "error"), -1)


def _figures(pairs: list[tuple[int, int | None]]) -> dict[str, Any]:
    erroneous = [(label, predicted) for label, predicted in pairs if label >= 0]
    correct = [(label, predicted) for label, predicted in pairs if label < 0]
    acc_error = sum(p == label for label, p in erroneous) / len(erroneous) if erroneous else None
    acc_correct = sum(p == -1 for _, p in correct) / len(correct) if correct else None
    if acc_error is None or acc_correct is None:
        f1 = None
    else:
        f1 = 2 * acc_error * acc_correct / (acc_error + acc_correct) if acc_error + acc_correct else 0.0
    return {
        "items": len(pairs),
        "erroneous": len(erroneous),
        "correct": len(correct),
        "failed_reviews": sum(p is None for _, p in pairs),
        "accuracy_erroneous": acc_error,
        "accuracy_correct": acc_correct,
        "f1": f1,
    }


def score(items: list[BenchItem], reviews: list[Review]) -> dict[str, dict[str, dict[str, Any]]]:
    """Figures per reviewer and source (and ``all`` over the sources it could review):
    ProcessBench's accuracies and F1."""
    by_item = {item.id: item for item in items}
    pairs: dict[str, dict[str, list[tuple[int, int | None]]]] = {}
    kinds: dict[str, dict[str, list[tuple[int, int | None]]]] = {}  # reviewer -> "source/kind" -> pairs
    for review in reviews:
        item = by_item[review.trace_id]
        pair = (item.label, first_error(review))
        pairs.setdefault(review.reviewer, {}).setdefault(item.source, []).append(pair)
        if item.kind:
            kinds.setdefault(review.reviewer, {}).setdefault(f"{item.source}/{item.kind}", []).append(pair)
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    for reviewer, sources in pairs.items():
        figures[reviewer] = {source: _figures(p) for source, p in sources.items()}
        # Per mistake kind: that kind's erroneous items beside all of the source's correct ones.
        for name, erroneous in sorted(kinds.get(reviewer, {}).items()):
            correct = [pair for pair in sources[name.split("/")[0]] if pair[0] < 0]
            figures[reviewer][name] = _figures(erroneous + correct)
        # "all": the sources this reviewer can review (a source whose every review failed,
        # such as GSM8K for the oracle, is left out here and shown on its own row).
        reviewable = [p for source, p in sources.items() if any(prediction is not None for _, prediction in p)]
        if len(sources) > 1 and reviewable:
            figures[reviewer]["all"] = _figures([pair for p in reviewable for pair in p])
    return figures


def run_bench(
    items: list[BenchItem],
    specs: list[ReviewerSpec],
    *,
    cache: ReviewCache | None = None,
    on_review: Callable[[Review], Any] | None = None,
) -> tuple[dict[str, Any], list[Review]]:
    """Review every item with every reviewer; the figures and the reviews."""
    if len({item.id for item in items}) != len(items):
        raise UserError("bench items must have distinct ids")
    reviews, _ = review_items(bench_review_items(items), specs, cache=cache, on_review=on_review)
    return score(items, reviews), reviews
