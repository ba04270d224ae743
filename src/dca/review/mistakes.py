"""The benchmark of real mistakes behind ``dca bench-reviewers --mistakes MODEL``: a model's
own wrong solutions of synthetic problems, with the first wrong step taken from the
problem's known structure.

Planted errors (`dca.review.bench`) change one arithmetic result of a correct solution; the
mistakes models make are mostly of other kinds. Here a model (the embedded model's warm
start, or any checkpoint) is rolled out on synthetic problems (`dca.problems.synthetic`,
whose facts, distractors and operation graph are known), and each trace becomes a
ProcessBench item: one step per unit (`dca.segment`), labelled with the first wrong unit,
or -1 for a solved trace with no wrong step.

**Truth** (`first_mistake`). A unit is wrong when

- an equation in it does not hold (an arithmetic slip), anywhere in the trace;
- it is on the final answer's dependence chain (`dca.review.traceback`; the walk stops at the
  problem's facts, its operations' values, the numbers its question gives and common
  constants, except a common constant the problem does not give that a unit computed; a
  value's source is the last computation of it from values of the solution path, when there is
  one) and computes a value that is no operation's value from inputs that are given or settled:
  from a distractor (*distractor*), with one input an earlier value of the path in place of the
  operation's own input (*skipped step*), otherwise (*wrong operation or quantity*); or it uses
  or states a value that neither the problem nor an earlier unit gives (*wrong operation or
  quantity*: a misread number);
- it is the answer statement and states an operation's value that is not the answer (the
  trace stopped early: *skipped step*), or a value no unit computed (*wrong final
  statement*).

Units of the chain built on a wrong value are dependents, not errors. The label is the first
wrong unit; its kind is the item's mistake kind. A wrong trace in which no unit qualifies
(rare: a value that coincides with the path's) is counted as unlabelled and left out; a
trace without an answer statement is a format failure and left out too.

The labels were checked by hand on 32 SmolLM2 traces (docs/results/mistakes-handcheck.md) and
on 75 erroneous and 20 correct traces of the micro start (docs/results/mistakes-handcheck-micro.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..domains.oracles.arithmetic import COMMON_CONSTANTS, question_values
from ..files import read_jsonl, write_jsonl
from ..measures import numbers
from ..model import SamplingConfig, load_model
from ..problems.answer import check_answer
from ..records import Problem, Trace, Unit
from ..rollout import rollout
from ..segment import segment
from .bench import BenchItem
from .traceback import answer_chain, key, read_units

__all__ = ["MISTAKE_KINDS", "Mistake", "first_mistake", "mistake_items", "rollout_cached"]

#: Mistake kinds, with the words tables use.
MISTAKE_KINDS = {
    "distractor": "a distractor used",
    "wrong_operation": "a wrong operation or quantity",
    "arithmetic": "an arithmetic slip",
    "skipped_step": "a skipped step",
    "final_statement": "a wrong final statement",
}


@dataclass
class Mistake:
    """The first wrong unit of a trace."""

    unit: int
    kind: str
    """One of `MISTAKE_KINDS`."""
    reason: str


def _operator(operands: list[float], result: float) -> str | None:
    if len(operands) != 2:
        return None
    a, b = operands
    for op, value in (("+", a + b), ("-", a - b), ("*", a * b), ("/", a / b if b else None)):
        if value is not None and key(value) == key(result):
            return op
    return None


class _Structure:
    """What the problem's known structure says about values."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.facts = {key(f.value) for f in problem.facts}
        self.operations = {key(o.value): o for o in problem.operations}
        self.values = {f.id: key(f.value) for f in problem.facts} | {o.id: key(o.value) for o in problem.operations}
        self.distractors = {key(d.value) for d in problem.distractors} - self.facts - set(self.operations)
        given_numbers = {key(v) for v in question_values(problem.question)}
        given = given_numbers | {key(v) for v in COMMON_CONSTANTS}
        self.constants = given - self.distractors
        # Common constants the problem does not give: a 30 the trace computed is its own, not a month's days.
        self.unstated = {key(v) for v in COMMON_CONSTANTS} - self.facts - set(self.operations) - self.distractors - given_numbers
        self.ancestors: dict[str, set[str]] = {}
        by_id = {o.id: o for o in problem.operations}
        for operation in problem.operations:
            self.ancestors[operation.id] = set(operation.inputs).union(*(self.ancestors.get(i, set()) for i in operation.inputs if i in by_id))

    def settled(self, value: float) -> bool:
        return value in self.facts or value in self.operations or value in self.distractors or value in self.constants

    def on_path(self, value: float) -> bool:
        """A value of the solution path (a fact or an operation's value)."""
        return value in self.facts or value in self.operations

    def skips(self, operands: list[float], result: float) -> str | None:
        """The operation an equation computes with an earlier value of the path in place of
        one of its inputs (a step left out), if any."""
        op = _operator(operands, result)
        for operation in self.problem.operations:
            if op != operation.op:
                continue
            inputs = [self.values[i] for i in operation.inputs]
            for position, kept in enumerate(inputs):
                other = operands[1 - operands.index(kept)] if kept in operands else None
                if other is None or other in inputs:
                    continue
                replaced = operation.inputs[1 - position]
                earlier = {self.values[i] for i in self.ancestors.get(replaced, set())}
                if other in earlier:
                    return f"computes {operation.id} from {other:g} instead of {self.values[replaced]:g}"
        return None


def first_mistake(problem: Problem, units: list[Unit]) -> Mistake | None:
    """The first wrong unit of a trace on a synthetic problem (see the module docstring);
    None when no unit is wrong."""
    readings = read_units(units)
    slip = next(
        (Mistake(i, "arithmetic", f"wrong arithmetic ({e.text})") for i, r in enumerate(readings) for e in r.equations if not e.correct),
        None,
    )
    answer_unit = _answer_unit(problem, units)
    if answer_unit is None or check_answer(units[answer_unit].text, problem.answer).outcome != "wrong":
        return slip
    structure = _Structure(problem)
    stated = check_answer(units[answer_unit].text, problem.answer).answer or ""
    answer = key(numbers(stated)[0]) if numbers(stated) else None
    found = [slip] if slip is not None else []
    if answer is not None:
        slipped = {key(e.result) for r in readings for e in r.equations if not e.correct}
        chain = answer_chain(readings, answer_unit, answer, structure.settled, on_path=structure.on_path, own_when_computed=structure.unstated)
        for link in chain:
            if any(v in slipped and v not in structure.facts and v not in structure.operations for v in link.inputs):
                continue  # an input an arithmetic slip produced (a constant-looking 8, say): a dependent
            mistake = _judge_link(structure, link)
            if mistake is not None:
                found.append(mistake)
                break  # links are in text order: the first qualifying one is the chain's origin
        final = _judge_answer(structure, readings, answer_unit, answer)
        if final is not None:
            found.append(final)
    return min(found, key=lambda m: m.unit) if found else None


def _answer_unit(problem: Problem, units: list[Unit]) -> int | None:
    """The last unit that states a final answer."""
    for index in range(len(units) - 1, -1, -1):
        if check_answer(units[index].text, problem.answer).outcome in ("correct", "wrong"):
            return index
    return None


def _judge_link(structure: _Structure, link) -> Mistake | None:
    if link.equation is None:
        return Mistake(link.unit, "wrong_operation", f"states {link.value:g}, which neither the problem nor a step gives")
    if not link.equation.correct or link.value in structure.operations:
        return None  # the arithmetic slip, found already; or a value of the path
    if link.unsourced:
        return Mistake(link.unit, "wrong_operation", f"uses {link.unsourced[0]:g}, which neither the problem nor a step gives")
    if not all(structure.settled(v) for v in link.inputs):
        return None  # built on an earlier link: a dependent
    distractor = next((v for v in link.inputs if v in structure.distractors), None)
    if distractor is not None:
        return Mistake(link.unit, "distractor", f"uses the distractor {distractor:g}")
    skipped = structure.skips(link.inputs, link.value)
    if skipped:
        return Mistake(link.unit, "skipped_step", skipped)
    return Mistake(link.unit, "wrong_operation", f"computes {link.value:g}, which is not on the solution path, from given values")


def _judge_answer(structure: _Structure, readings, answer_unit: int, answer: float) -> Mistake | None:
    operation = structure.operations.get(answer)
    if operation is not None:
        return Mistake(answer_unit, "skipped_step", f"states {operation.id} ({answer:g}) as the answer, before the last operation")
    if answer in structure.distractors:
        return Mistake(answer_unit, "distractor", f"states the distractor {answer:g} as the answer")
    computed = any(r.computes(answer) for r in readings[: answer_unit + 1]) or any(answer in r.numbers for r in readings[:answer_unit])
    if not computed:
        return Mistake(answer_unit, "final_statement", f"states {answer:g}, which no step computed")
    return None


def mistake_items(problems: list[Problem], traces: list[Trace]) -> tuple[list[BenchItem], dict[str, int]]:
    """Bench items from rolled-out traces: each wrong trace with its first mistake, each
    solved trace (label -1, or its arithmetic slip); and the counts of what was left out."""
    by_id = {p.id: p for p in problems}
    items: list[BenchItem] = []
    counts = {"traces": len(traces), "solved": 0, "wrong": 0, "format_failures": 0, "unlabelled": 0}
    for trace in traces:
        problem = by_id[trace.problem_id]
        units = segment(trace.completion)
        if trace.outcome not in ("correct", "wrong") or not units or _answer_unit(problem, units) is None:
            counts["format_failures"] += 1
            continue
        counts["solved" if trace.outcome == "correct" else "wrong"] += 1
        mistake = first_mistake(problem, units)
        if trace.outcome == "wrong" and mistake is None:
            counts["unlabelled"] += 1
            continue
        items.append(
            BenchItem(
                id=trace.id,
                source="mistakes",
                problem=problem,
                steps=[u.text.strip() or u.text for u in units],
                label=-1 if mistake is None else mistake.unit,
                kind="" if mistake is None else mistake.kind,
                planted={} if mistake is None else {"reason": mistake.reason, "outcome": trace.outcome},
            )
        )
    return items, counts


# ---------------------------------------------------------------------------------------------
# Rolling a model out once


def rollout_key(model_path: str, problems: list[Problem], settings: dict) -> str:
    """A hash of what changes the rolled-out traces: the checkpoint (path and time), the
    problems and the sampling settings."""
    identity = model_path
    config = Path(model_path) / "config.json"
    if config.is_file():
        identity = f"{os.path.abspath(model_path)}@{config.stat().st_mtime_ns}"
    payload = json.dumps({"model": identity, "problems": [p.id for p in problems], "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def rollout_cached(
    model_path: str, problems: list[Problem], settings: dict, cache: Path, *, log: Callable[[str], None] = print
) -> list[Trace]:
    """The model's traces on the problems, rolled out once and cached at `cache`/<key>.jsonl."""
    path = cache / f"{rollout_key(model_path, problems, settings)}.jsonl"
    if path.is_file():
        log(f"mistakes: cached rollout {path}")
        return read_jsonl(path, Trace)
    sampling = SamplingConfig(**settings)
    model, tokenizer = load_model(model_path)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        log(f"  mistakes: {done}/{len(problems) * sampling.samples_per_problem} completions")

    traces = rollout(model, tokenizer, problems, sampling, model_name=model_path, on_batch=progress)
    cache.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, traces)  # atomic: a temporary file, then a rename
    log(f"mistakes: rolled out {len(traces)} traces, cached at {path}")
    return traces
