"""The reference reviewer: labels a trace by matching the quantities it computes against a
reference solution's calculator-annotated values (GSM8K: ``48/2 = <<48/2=24>>24``).

The reference solution fixes the *reference values* (every annotated result, the answer
last, and the results of correct equations its lines write without an annotation, which
some GSM8K lines do) and the *used givens* (the operands of those expressions that are not
themselves results: the problem's numbers it needs, even when the question spells them
"three"). Question numbers that no expression uses are *unused givens*. Numbers are
compared after rounding to two decimals, so "$0.33" matches 1/3 of a dollar. Each unit gets
one (function, contribution) label by the first rule that applies:

1. **Answer statement** (``Answer: N`` or a lenient form, via `dca.problems.answer`):
   ``conclusion/solved`` when N is right, else ``conclusion/error``.
2. **Wrong arithmetic** (``a op b = c`` whose left side is not ``c``): ``computation/error``.
3. **Verification** ("check", "verify", ...) whose numbers all appeared earlier:
   ``verification/irrelevant``.
4. **Equations** (all correct): one whose result is a reference value is on the path:
   ``computation/essential`` (``computation/solved`` when the result is the answer).
   Otherwise ``computation/irrelevant`` — unless a later on-path equation uses its result as
   an operand (a route the reference does not take, e.g. ``16 - 3 = 13`` then
   ``13 - 4 = 9``): then that earlier unit becomes ``computation/essential``.
5. **Numbers without an equation**: the answer value (once computed, or when it is not also
   a given): ``conclusion/solved``; only used givens: ``given_fact/indirect``; only givens,
   some unused: ``given_fact/irrelevant``; reference values (with givens): a result stated
   without its equation, ``computation/essential``; values an earlier unit derived:
   ``computation/irrelevant``; anything else: ``computation/unverified``.
6. **No numbers**: a restatement of the question: ``task_statement/indirect``; anything else:
   ``other/unverified`` (nothing to check either way; credit treats it as unlabelled).

**Tracing a wrong answer back** (issue 22). The rules above judge each unit alone, so on a
wrong solution they tend to blame the last computation that produced the wrong answer rather
than the step where the solution left the reference's path. When the final answer is wrong,
the reviewer then follows the answer's dependence chain (`dca.review.traceback`: which unit
produced each value the answer rests on, preferring a computation from used givens and
reference values, stopping at given and reference values and at common constants the trace
did not compute) and labels the earliest unit on it whose result is no reference value while
its inputs are all given or reference values (or that uses a given the reference never uses,
or a number nobody gave) ``error``; the later units of the chain are its dependents
(``irrelevant``, depending on it).
Wrong arithmetic anywhere stays an error. Synthetic problems have no annotated reference
solution; their operation graph serves as one (`with_reference`).

Contiguous units with the same label form one step; a step depends on the latest earlier
steps that stated or computed the values it uses (the oracle's grouping, `oracle._group`).
It departs from the oracle in what it can know: GSM8K does not say which question numbers
are distractors, so "unused" is judged against this one reference solution, a correct
alternative route that never reaches a reference value is labelled irrelevant, and algebra
over unknowns ("let x be ...; 2x = 80") is not understood (on GSM8K test's own reference
solutions, 95 % of units come out useful; the rest are mostly such algebra).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from ..measures import BACKTRACKING, VERIFICATION, equations, numbers
from ..problems.answer import check_answer
from ..domains.oracles.arithmetic import (
    _TASK_WORDS,
    _WORD,
    COMMON_CONSTANTS,
    _group,
    _Label,
    mark_failed_attempts,
    question_values,
)
from ..records import UNVERIFIED, Problem, ReferenceStep, Review, Unit
from .traceback import answer_chain, read_units

__all__ = ["ReferenceReviewer"]


def _key(value: float) -> float:
    return round(value, 2)


def _name(value: float) -> str:
    return f"value:{_key(value):g}"


class ReferenceReviewer:
    """Reviews traces on problems with an annotated reference solution (GSM8K)."""

    name = "reference"

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        problem = with_reference(problem)
        if not problem.reference_steps or not problem.intermediate_values:
            return Review.failed(
                trace_id, self.name, units, f"problem {problem.id} has no annotated reference solution", metadata={"failure": "unsupported_problem"}
            )
        labels = _ReferenceLabeller(problem).label(units)
        return Review(
            trace_id=trace_id,
            reviewer=self.name,
            units=units,
            steps=_group(labels),
            metadata={"problem_id": problem.id},
        )


def with_reference(problem: Problem) -> Problem:
    """A synthetic problem with its operation graph written as an annotated reference solution
    (one line ``a op b = c`` per operation, the answer last); other problems as they are."""
    if problem.reference_steps or not problem.operations:
        return problem
    values = {f.id: f.value for f in problem.facts} | {o.id: o.value for o in problem.operations}
    steps = []
    for operation in problem.operations:
        expression = f" {operation.op} ".join(f"{values[i]:g}" for i in operation.inputs)
        steps.append(ReferenceStep(text=f"{expression} = {operation.value:g}", expressions=[expression.replace(" ", "")], values=[operation.value]))
    return dataclasses.replace(problem, reference_steps=steps, intermediate_values=[o.value for o in problem.operations])


class _ReferenceLabeller:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.reference = {_key(v) for v in problem.intermediate_values}
        self.answer = _key(problem.intermediate_values[-1])
        operands = {_key(v) for step in problem.reference_steps for e in step.expressions for v in numbers(e)}
        for step in problem.reference_steps:  # some GSM8K lines compute without an annotation
            for equation in equations(step.text):
                if equation.correct:
                    self.reference.add(_key(equation.result))
                    operands.update(_key(v) for v in equation.operands)
        self.used_givens = operands - self.reference
        self.question_numbers = {_key(v) for v in numbers(problem.question)}
        self.unused_givens = self.question_numbers - self.used_givens - self.reference
        # Values a step may use without deriving them in the trace.
        self.given = self.used_givens | self.reference | {_key(v) for v in question_values(problem.question)}
        self.base = self.given | {_key(v) for v in COMMON_CONSTANTS}
        # The reference's expressions as operand multisets, to spot one computed with a wrong input.
        self.expressions = [
            (expression, Counter(_key(v) for v in numbers(expression)), _key(value))
            for step in problem.reference_steps
            for expression, value in zip(step.expressions, step.values)
        ]
        question_sentence = re.split(r"(?<=[.!?])\s+", problem.question.strip())[-1]
        self.question_words = set(_WORD.findall(question_sentence.lower()))

    def label(self, units: list[Unit]) -> list[_Label]:
        self.seen: set[float] = set()
        self.known: set[float] = set()  # values stated or derived by units not built on an error
        self.wrong: dict[float, int] = {}  # value produced by an error (or built on one) -> unit
        self.off_path: dict[float, int] = {}  # value computed by a correct off-path equation -> unit
        self.answer_computed = False
        labels: list[_Label] = []
        for unit in units:
            label = self._label_unit(unit.text, labels)
            labels.append(label)
            values = {_key(v) for v in numbers(unit.text)}
            self.seen.update(values)
            if label.contribution != "error" and not label.on_error:
                self.known.update(values)
        self._trace_back(units, labels)
        return mark_failed_attempts(units, labels)

    def _trace_back(self, units: list[Unit], labels: list[_Label]) -> None:
        """When the final answer is wrong: the earliest unit of its dependence chain whose
        result leaves the reference's values while its inputs are given or on the path is the
        error; the later units of the chain are its dependents (`dca.review.traceback`)."""
        answer_unit = next((i for i in range(len(labels) - 1, -1, -1) if labels[i].function == "conclusion"), None)
        if answer_unit is None or labels[answer_unit].contribution != "error":
            return
        stated = check_answer(units[answer_unit].text, self.problem.answer).answer or ""
        values = [_key(v) for v in numbers(stated)]
        if not values:
            return
        origin = None
        on_path = self.used_givens | self.reference
        unstated = {_key(v) for v in COMMON_CONSTANTS} - self.given  # a 30 the trace computed is its own
        readings = read_units(units)
        chain = answer_chain(readings, answer_unit, values[0], self.base.__contains__, on_path=on_path.__contains__, own_when_computed=unstated)
        for link in chain:
            label = labels[link.unit]
            if origin is not None:
                if label.contribution != "error":
                    label.contribution, label.on_error = "irrelevant", True
                    label.reason = f"builds on the wrong value of unit {origin}"
                continue
            reason = self._leaves_path(link)
            if reason is not None:
                origin = link.unit
                label.function = "computation" if link.equation is not None else label.function
                label.contribution, label.reason = "error", reason

    def _leaves_path(self, link) -> str | None:
        """Why a link of the answer's chain is where the trace left the reference path (None:
        it is not: its inputs come from an earlier link, or its arithmetic was judged already)."""
        if link.equation is None:
            return f"states {link.value:g}, which neither the problem nor the reference gives"
        if not link.equation.correct or link.value in self.reference:
            return None
        if link.unsourced:
            return f"uses {link.unsourced[0]:g}, which neither the problem nor an earlier step gives"
        if not all(v in self.base for v in link.inputs):
            return None
        if any(v in self.wrong and v not in self.given for v in link.inputs):
            return None  # a constant-looking input that an earlier error produced: a dependent
        unused = next((v for v in link.inputs if v in self.unused_givens), None)
        if unused is not None:
            return f"uses {unused:g}, which the reference solution never uses"
        return f"computes {link.value:g}, off the reference path, from given values"

    def _derivable(self, value: float) -> bool:
        return value in self.base or value in self.known

    def _built_on(self, values) -> list[float]:
        """The values among `values` that only an earlier error produced."""
        return [v for v in values if v in self.wrong and v not in self.given and v not in self.known]

    def _wrong_input(self, found) -> str | None:
        """Why an equation that misses the reference path is the reference's computation with
        one wrong input (one that neither the problem nor the trace gives), if it is."""
        for equation in found:
            result = _key(equation.result)
            if result in self.reference:
                continue
            operands = Counter(_key(v) for v in equation.operands)
            for expression, reference_operands, value in self.expressions:
                extra, missing = operands - reference_operands, reference_operands - operands
                if sum(extra.values()) == 1 and sum(missing.values()) == 1:
                    used = next(iter(extra))
                    if used not in self.given and used not in self.known:
                        return f"computes {expression} with {used:g} instead of {next(iter(missing)):g}"
        return None

    def _label_unit(self, text: str, earlier: list[_Label]) -> _Label:
        index = len(earlier)
        check = check_answer(text, self.problem.answer)
        if check.outcome == "correct":
            return _Label("conclusion", "solved", "states the right final answer", needs={_name(self.answer)})
        if check.outcome == "wrong":
            return _Label("conclusion", "error", f"states a wrong final answer ({check.answer})", needs={_name(v) for v in numbers(text)})
        values = [_key(v) for v in numbers(text)]
        found = equations(text)
        wrong = [e for e in found if not e.correct]
        if wrong:
            for e in found:
                self.wrong.setdefault(_key(e.result), index)
            return _Label(
                "computation", "error", f"wrong arithmetic ({wrong[0].text})",
                provides={_name(e.result) for e in found}, needs={_name(v) for e in found for v in e.operands},
            )  # fmt: skip
        operands = [_key(v) for e in found for v in e.operands]
        on_error = self._built_on(operands if found else values)
        if on_error:
            for e in found:
                self.wrong.setdefault(_key(e.result), index)
            return _Label(
                "computation" if found else "given_fact", "irrelevant", f"builds on the wrong value {on_error[0]:g}",
                provides={_name(e.result) for e in found}, needs={_name(v) for v in on_error}, on_error=True,
            )  # fmt: skip
        underived = [v for v in operands if not self._derivable(v)]
        if underived and not any(_key(e.result) in self.reference for e in found):
            for e in found:
                self.wrong.setdefault(_key(e.result), index)
            return _Label(
                "computation", "error", f"uses {underived[0]:g}, which neither the problem nor an earlier step gives",
                provides={_name(e.result) for e in found},
            )  # fmt: skip
        if VERIFICATION.search(text) and values and set(values) <= self.seen:
            return _Label("verification", "irrelevant", "re-checks values already known")
        misread = self._wrong_input(found)
        if misread:
            for e in found:
                self.wrong.setdefault(_key(e.result), index)
            return _Label("computation", "error", misread, provides={_name(e.result) for e in found})
        if found:
            return self._label_equations(found, index, earlier)
        if values:
            return self._label_numbers(values, signed=numbers(text, signed=True))
        if BACKTRACKING.search(text) and any(label.contribution == "error" or label.on_error for label in earlier):
            return _Label("backtracking", "indirect", "abandons the wrong line of work before")
        if _TASK_WORDS.search(text) or self._mostly_question_words(text):
            return _Label("task_statement", "indirect", "restates the question")
        return _Label("other", UNVERIFIED, "no quantity, not the question: cannot be checked")

    def _label_equations(self, found, index: int, earlier: list[_Label]) -> _Label:
        on_path: list[float] = []
        provides: set[str] = set()
        needs: set[str] = set()
        for equation in found:
            result = _key(equation.result)
            operands = [_key(v) for v in equation.operands]
            provides.add(_name(result))
            needs.update(_name(v) for v in operands)
            if result in self.reference:
                on_path.append(result)
                for value in operands:  # an off-path route that led here was useful after all
                    source = self.off_path.get(value)
                    if value not in self.reference and value not in self.used_givens and source is not None and source < index:
                        earlier[source].contribution = "essential"
                        earlier[source].reason = f"derives {value:g}, used to reach {result:g}"
            else:
                self.off_path.setdefault(result, index)
        if not on_path:
            return _Label("computation", "irrelevant", "computes a value off the reference path", provides=provides, needs=needs)
        solved = self.answer in on_path
        self.answer_computed |= solved
        shown = ", ".join(f"{v:g}" for v in on_path)
        return _Label(
            "computation",
            "solved" if solved else "essential",
            f"computes {shown} on the reference path",
            provides=provides,
            needs=needs,
        )

    def _label_numbers(self, values_read: list[float], *, signed: list[float]) -> _Label:
        values = set(values_read)
        gold = self.problem.intermediate_values[-1]
        answer_stated = any(_key(v) == _key(gold) for v in signed)  # signs count for the answer
        if answer_stated and (self.answer_computed or self.answer not in self.used_givens):
            return _Label("conclusion", "solved", "states the final answer", needs={_name(self.answer)})
        givens = self.used_givens | self.unused_givens
        if values <= self.used_givens:
            return _Label("given_fact", "indirect", "restates needed givens", provides={_name(v) for v in values})
        if values <= givens:
            return _Label("given_fact", "irrelevant", "states a given the reference never uses")
        if values <= givens | self.reference:
            on_path = sorted(values & self.reference)
            return _Label(
                "computation",
                "essential",
                f"states {', '.join(f'{v:g}' for v in on_path)} on the reference path",
                provides={_name(v) for v in on_path},
            )
        if values <= self.known:
            return _Label("computation", "irrelevant", "restates a value off the reference path")
        return _Label("computation", UNVERIFIED, "states a value the reference and the steps before do not give")

    def _mostly_question_words(self, text: str) -> bool:
        words = _WORD.findall(text.lower())
        return len(words) >= 3 and sum(w in self.question_words for w in words) >= 0.6 * len(words)
