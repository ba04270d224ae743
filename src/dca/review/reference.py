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
   without its equation, ``computation/essential``; anything else:
   ``computation/irrelevant``.
6. **No numbers**: a restatement of the question: ``task_statement/indirect``; anything else:
   ``other/irrelevant``.

Contiguous units with the same label form one step; a step depends on the latest earlier
steps that stated or computed the values it uses (the oracle's grouping, `oracle._group`).
It departs from the oracle in what it can know: GSM8K does not say which question numbers
are distractors, so "unused" is judged against this one reference solution, a correct
alternative route that never reaches a reference value is labelled irrelevant, and algebra
over unknowns ("let x be ...; 2x = 80") is not understood (on GSM8K test's own reference
solutions, 95 % of units come out useful; the rest are mostly such algebra).
"""

from __future__ import annotations

import re

from ..problems.answer import check_answer
from ..records import Problem, Review, Unit
from .oracle import _TASK_WORDS, _VERIFICATION, _WORD, _equations, _group, _Label, _numbers

__all__ = ["ReferenceReviewer"]


def _key(value: float) -> float:
    return round(value, 2)


def _name(value: float) -> str:
    return f"value:{_key(value):g}"


class ReferenceReviewer:
    """Reviews traces on problems with an annotated reference solution (GSM8K)."""

    name = "reference"

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        if not problem.reference_steps or not problem.intermediate_values:
            return Review(
                trace_id=trace_id,
                reviewer=self.name,
                units=units,
                status="failed",
                error=f"problem {problem.id} has no annotated reference solution",
                unreviewed_units=[u.index for u in units],
                metadata={"failure": "unsupported_problem"},
            )
        labels = _ReferenceLabeller(problem).label(units)
        return Review(
            trace_id=trace_id,
            reviewer=self.name,
            units=units,
            steps=_group(labels),
            metadata={"problem_id": problem.id},
        )


class _ReferenceLabeller:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.reference = {_key(v) for v in problem.intermediate_values}
        self.answer = _key(problem.intermediate_values[-1])
        operands = {_key(v) for step in problem.reference_steps for e in step.expressions for v in _numbers(e)}
        for step in problem.reference_steps:  # some GSM8K lines compute without an annotation
            for equation in _equations(step.text):
                if equation.correct:
                    self.reference.add(_key(equation.result))
                    operands.update(_key(v) for v in equation.operands)
        self.used_givens = operands - self.reference
        self.question_numbers = {_key(v) for v in _numbers(problem.question)}
        self.unused_givens = self.question_numbers - self.used_givens - self.reference
        question_sentence = re.split(r"(?<=[.!?])\s+", problem.question.strip())[-1]
        self.question_words = set(_WORD.findall(question_sentence.lower()))

    def label(self, units: list[Unit]) -> list[_Label]:
        self.seen: set[float] = set()
        self.off_path: dict[float, int] = {}  # value computed by a correct off-path equation -> unit
        self.answer_computed = False
        labels: list[_Label] = []
        for unit in units:
            label = self._label_unit(unit.text, labels)
            labels.append(label)
            self.seen.update(_key(v) for v in _numbers(unit.text))
        return labels

    def _label_unit(self, text: str, earlier: list[_Label]) -> _Label:
        check = check_answer(text, self.problem.answer)
        if check.outcome == "correct":
            return _Label("conclusion", "solved", "states the right final answer", needs={_name(self.answer)})
        if check.outcome == "wrong":
            return _Label("conclusion", "error", f"states a wrong final answer ({check.answer})")
        numbers = [_key(v) for v in _numbers(text)]
        equations = _equations(text)
        wrong = [e for e in equations if not e.correct]
        if wrong:
            return _Label("computation", "error", f"wrong arithmetic (... = {wrong[0].result:g})")
        if _VERIFICATION.search(text) and numbers and set(numbers) <= self.seen:
            return _Label("verification", "irrelevant", "re-checks values already known")
        if equations:
            return self._label_equations(equations, len(earlier), earlier)
        if numbers:
            return self._label_numbers(numbers)
        if _TASK_WORDS.search(text) or self._mostly_question_words(text):
            return _Label("task_statement", "indirect", "restates the question")
        return _Label("other", "irrelevant", "no quantity, not the question")

    def _label_equations(self, equations, index: int, earlier: list[_Label]) -> _Label:
        on_path: list[float] = []
        provides: set[str] = set()
        needs: set[str] = set()
        for equation in equations:
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

    def _label_numbers(self, numbers: list[float]) -> _Label:
        values = set(numbers)
        if self.answer in values and (self.answer_computed or self.answer not in self.used_givens):
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
        return _Label("computation", "irrelevant", "states a value off the reference path")

    def _mostly_question_words(self, text: str) -> bool:
        words = _WORD.findall(text.lower())
        return len(words) >= 3 and sum(w in self.question_words for w in words) >= 0.6 * len(words)
