"""The oracle reviewer: labels a trace on a synthetic problem from its known structure.

A synthetic problem (`dca.problems.synthetic`) records which facts are needed, which are
distractors, and every operation on the solution path with its inputs. The generator keeps
stated numbers and intermediate values distinct, so the numbers a unit mentions say which
part of the structure it touches. Each unit gets one (function, contribution) label by the
first rule that applies:

1. **Answer statement** (an ``Answer: N`` line or a lenient form such as "The answer is N",
   found by `dca.problems.answer`): ``conclusion/solved`` when N is right, else
   ``conclusion/error``.
2. **Wrong arithmetic**: an equation ``a op b = c`` (also chains, ``x``, ``×``, ``÷``)
   whose left side does not evaluate to its right side: ``computation/error``.
3. **Verification**: a unit phrased as a check ("let me check / verify / double-check",
   "confirm", "make sure") whose numbers all appeared earlier in the trace:
   ``verification/irrelevant``.
4. **Equations** (all correct): an equation is *on the path* when its result is the value
   of an operation v and each operand is the value of a fact or operation that v depends
   on, or a value derived earlier in the trace from such values only (a step-around route,
   e.g. adding two amounts first, is credited and so are the units that derived its
   operands). On the path: ``computation/essential``, or ``computation/solved`` for the
   last operation. Any other equation (distractor operands, values off the path):
   ``computation/irrelevant``.
5. **Numbers without an equation**: any distractor number: ``given_fact/irrelevant``; else
   the answer value among them: ``conclusion/solved``; only needed-fact numbers:
   ``given_fact/indirect``; another intermediate value: ``computation/essential`` (a result
   computed without writing the equation); numbers that are none of these:
   ``computation/irrelevant``. A number that is both a needed fact and the answer (which the
   generator avoids where it can) counts as the fact until the last operation is computed.
6. **No numbers**: a restatement of the question (question words such as "how many", or
   most of its words taken from the question's last sentence): ``task_statement/indirect``;
   anything else (filler): ``other/irrelevant``.

Contiguous units with the same label form one step. A step depends on the latest earlier
steps that stated or computed the inputs of the operations it computes (the conclusion
depends on the step that computed the answer). Numbers are read with thousands separators,
decimals and currency signs ("1,200", "3.5", "$5"); signs are ignored, as synthetic values
are positive.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ...measures import BACKTRACKING as _BACKTRACKING
from ...measures import VERIFICATION as _VERIFICATION
from ...measures import Equation as _Equation
from ...measures import equations as _equations
from ...measures import numbers as _numbers
from ...problems.answer import check_answer
from ...records import Operation, Problem, Review, Step, Unit

_TASK_WORDS = re.compile(
    r"\b(?:how many|how much|what is|we need to|need to find|find out|the question)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z']+")


@dataclass
class _Label:
    function: str
    contribution: str
    reason: str
    provides: set[str] = field(default_factory=set)
    """Fact or operation ids this unit states or computes."""
    needs: set[str] = field(default_factory=set)
    """Ids this unit uses."""
    on_error: bool = False
    """The unit builds on a value an earlier error produced."""


#: Numbers a solution may use without the problem stating them (unit conversions, halves,
#: percentages of a whole, small counts).
COMMON_CONSTANTS = frozenset(
    {0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 24.0, 30.0, 52.0, 60.0, 100.0, 365.0, 1000.0}
)

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "dozen": 12, "half": 0.5, "twice": 2, "double": 2,
    "triple": 3, "thrice": 3, "quarter": 0.25, "third": 3, "fourth": 4, "fifth": 5, "tenth": 10,
}  # fmt: skip


def question_values(question: str) -> set[float]:
    """The values a problem's text gives: its numbers, number words ("three", "dozen",
    "twice"), and for each number n its share n/100 and complement 100-n and (100-n)/100
    (percentages: "20% off" is used as 0.8)."""
    values = set(_numbers(question)) | {float(v) for w, v in _NUMBER_WORDS.items() if re.search(rf"\b{w}\b", question, re.IGNORECASE)}
    for n in list(values):
        if 0 < n <= 100:
            values |= {n / 100, 100 - n, (100 - n) / 100}
    return {round(v, 4) for v in values}


class ArithmeticOracleReviewer:
    """Reviews traces on synthetic arithmetic problems from their known causal structure.
    The ``oracle`` reviewer (`dca.domains.OracleReviewer`) routes each problem to its domain's
    oracle; this is the arithmetic domain's (and the fallback for problems of no known domain)."""

    name = "oracle"

    def review(
        self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str
    ) -> Review:
        if not problem.operations:
            return Review.failed(trace_id, self.name, units, f"problem {problem.id} has no known structure (not a synthetic problem)")
        labels = _UnitLabeller(problem).label(units)
        return Review(
            trace_id=trace_id,
            reviewer=self.name,
            units=units,
            steps=_group(labels),
            metadata={"problem_id": problem.id},
        )


class _UnitLabeller:
    """Applies the module docstring's rules to the units of one trace, in order."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.final: Operation = problem.operations[-1]
        self.values = {f.id: f.value for f in problem.facts}
        self.values |= {o.id: o.value for o in problem.operations}
        self.fact_ids = {f.value: f.id for f in problem.facts}
        self.operation_ids = {o.value: o.id for o in problem.operations}
        self.distractor_values = {d.value for d in problem.distractors} - set(self.values.values())
        operations = {o.id: o for o in problem.operations}
        self.ancestors: dict[str, set[str]] = {}
        for operation in problem.operations:  # evaluation order: inputs come first
            self.ancestors[operation.id] = set(operation.inputs).union(
                *(self.ancestors.get(i, set()) for i in operation.inputs if i in operations)
            )
        question_sentence = re.split(r"(?<=[.!?])\s+", problem.question.strip())[-1]
        self.question_words = set(_WORD.findall(question_sentence.lower()))
        # Values a step may use without deriving them in the trace.
        self.given = set(self.values.values()) | {d.value for d in problem.distractors} | question_values(problem.question)
        self.base = self.given | COMMON_CONSTANTS

    def label(self, units: list[Unit]) -> list[_Label]:
        self.seen: set[float] = set()
        self.known: set[float] = set()  # values stated or derived by units not built on an error
        self.wrong: dict[float, int] = {}  # value produced by an error (or built on one) -> unit
        # Values derived by correct off-graph equations over needed values: value -> unit.
        self.derived: dict[float, int] = {}
        self.final_computed = False
        labels: list[_Label] = []
        for unit in units:
            label = self._label_unit(unit.text, labels)
            labels.append(label)
            values = set(_numbers(unit.text))
            self.seen.update(values)
            if label.contribution != "error" and not label.on_error:
                self.known.update(values)
            self.final_computed |= self.final.id in label.provides
        return mark_failed_attempts(units, labels)

    def _derivable(self, value: float) -> bool:
        return value in self.base or value in self.known or value in self.derived

    def _built_on(self, values) -> list[float]:
        """The values among `values` that only an earlier error produced."""
        return [v for v in values if v in self.wrong and v not in self.given and v not in self.known]

    def _wrong_input(self, equations: list[_Equation]) -> str | None:
        """Why an equation off the solution path computes an operation with one wrong input
        (one that neither the problem nor the trace gives), if it does."""
        for equation in equations:
            if equation.result in self.operation_ids:
                continue
            operands = Counter(equation.operands)
            for operation in self.problem.operations:
                inputs = Counter(self.values[i] for i in operation.inputs)
                extra, missing = operands - inputs, inputs - operands
                if sum(extra.values()) == 1 and sum(missing.values()) == 1:
                    used = next(iter(extra))
                    if used not in self.given and used not in self.known and used not in self.derived:
                        return f"computes {operation.id} with {_show(used)} instead of {_show(next(iter(missing)))}"
        return None

    def _label_unit(self, text: str, earlier: list[_Label]) -> _Label:
        index = len(earlier)
        numbers = _numbers(text)
        check = check_answer(text, self.problem.answer)
        if check.outcome == "correct":
            return _Label(
                "conclusion", "solved", "states the right final answer", needs={self.final.id}
            )
        if check.outcome == "wrong":
            return _Label("conclusion", "error", f"states a wrong final answer ({check.answer})", needs={f"wrong:{v}" for v in numbers})

        equations = _equations(text)
        wrong = [e for e in equations if not e.correct]
        if wrong:
            for e in equations:
                self.wrong.setdefault(e.result, index)
            reason = f"wrong arithmetic ({wrong[0].text})"
            return _Label(
                "computation", "error", reason,
                provides={f"wrong:{e.result}" for e in equations}, needs={self._source(v) for e in equations for v in e.operands},
            )  # fmt: skip
        operands = [v for e in equations for v in e.operands]
        on_error = self._built_on(operands if equations else numbers)
        if on_error:
            for e in equations:
                self.wrong.setdefault(e.result, index)
            return _Label(
                "computation" if equations else "given_fact", "irrelevant", f"builds on the wrong value {_show(on_error[0])}",
                provides={f"wrong:{e.result}" for e in equations}, needs={f"wrong:{v}" for v in on_error}, on_error=True,
            )  # fmt: skip
        underived = [v for v in operands if not self._derivable(v)]
        if underived and not any(e.result in self.operation_ids for e in equations):
            for e in equations:
                self.wrong.setdefault(e.result, index)
            return _Label(
                "computation", "error", f"uses {_show(underived[0])}, which neither the problem nor an earlier step gives",
                provides={f"wrong:{e.result}" for e in equations},
            )  # fmt: skip
        if _VERIFICATION.search(text) and numbers and set(numbers) <= self.seen:
            return _Label("verification", "irrelevant", "re-checks values already known")
        misread = self._wrong_input(equations)
        if misread:
            for e in equations:
                self.wrong.setdefault(e.result, index)
            return _Label("computation", "error", misread, provides={f"wrong:{e.result}" for e in equations})
        if equations:
            return self._label_equations(equations, index, earlier)
        if numbers:
            return self._label_numbers(numbers)
        if _BACKTRACKING.search(text) and any(label.contribution == "error" or label.on_error for label in earlier):
            return _Label("backtracking", "indirect", "abandons the wrong line of work before")
        if _TASK_WORDS.search(text) or self._mostly_question_words(text):
            return _Label("task_statement", "indirect", "restates the question")
        return _Label("other", "irrelevant", "no quantity, not the question")

    def _label_equations(
        self, equations: list[_Equation], index: int, earlier: list[_Label]
    ) -> _Label:
        computed: list[str] = []
        provides: set[str] = set()
        needs: set[str] = set()
        for equation in equations:
            operation_id = self._on_path(equation, index, earlier)
            if operation_id is not None:
                computed.append(operation_id)
                provides.add(operation_id)
                needs.update(self._source(v) for v in equation.operands)
            elif all(self._is_needed(v) for v in equation.operands):
                self.derived.setdefault(equation.result, index)
                provides.add(self._source(equation.result))
                needs.update(self._source(v) for v in equation.operands)
        if not computed:
            return _Label(
                "computation", "irrelevant", "computes a value off the solution path",
                provides=provides, needs=needs,
            )
        solved = self.final.id in computed
        return _Label(
            "computation",
            "solved" if solved else "essential",
            f"computes {', '.join(computed)} on the solution path",
            provides=provides,
            needs=needs,
        )

    def _on_path(self, equation: _Equation, index: int, earlier: list[_Label]) -> str | None:
        """The operation an equation computes from the right inputs, if any; credits the
        units that derived off-graph operands it uses."""
        operation_id = self.operation_ids.get(equation.result)
        if operation_id is None:
            return None
        allowed = {self.values[i] for i in self.ancestors[operation_id]}
        if not all(v in allowed or v in self.derived for v in equation.operands):
            return None
        for value in equation.operands:
            if value not in allowed and self.derived[value] < index:
                # A derived value: the unit that derived it was on a route to v.
                unit_label = earlier[self.derived[value]]
                unit_label.contribution = "essential"
                unit_label.reason = f"derives a value used to compute {operation_id}"
        return operation_id

    def _label_numbers(self, numbers: list[float]) -> _Label:
        if any(v in self.distractor_values for v in numbers):
            return _Label("given_fact", "irrelevant", "states a distractor quantity")
        answer = self.final.value
        if answer in numbers and (self.final_computed or answer not in self.fact_ids):
            return _Label("conclusion", "solved", "states the final answer", needs={self.final.id})
        if all(v in self.fact_ids for v in numbers):
            return _Label(
                "given_fact", "indirect", "restates needed facts",
                provides={self.fact_ids[v] for v in numbers},
            )
        on_path = [self.operation_ids[v] for v in numbers if v in self.operation_ids]
        if on_path and all(v in self.fact_ids or v in self.operation_ids for v in numbers):
            return _Label(
                "computation", "essential", f"states {', '.join(on_path)} on the solution path",
                provides=set(on_path), needs=set().union(*(self._inputs(i) for i in on_path)),
            )
        return _Label("computation", "irrelevant", "states a value off the solution path")

    def _is_needed(self, value: float) -> bool:
        return value in self.fact_ids or value in self.operation_ids or value in self.derived

    def _source(self, value: float) -> str:
        """The id of what a value is: a fact, an operation, or a value derived in the trace."""
        return self.fact_ids.get(value) or self.operation_ids.get(value) or f"derived:{value}"

    def _inputs(self, operation_id: str) -> set[str]:
        return set(next(o for o in self.problem.operations if o.id == operation_id).inputs)

    def _mostly_question_words(self, text: str) -> bool:
        words = _WORD.findall(text.lower())
        return len(words) >= 3 and sum(w in self.question_words for w in words) >= 0.6 * len(words)


def mark_failed_attempts(units: list[Unit], labels: list[_Label]) -> list[_Label]:
    """Abandoned lines of work: when a unit backtracks ("wait", "actually", "let me redo"),
    the units since the previous backtracking that built on an earlier error become
    ``failed_attempt`` (the error itself stays ``error``)."""
    start = 0
    for k, unit in enumerate(units):
        if not _BACKTRACKING.search(unit.text):
            continue
        for i in range(start, k):
            if labels[i].on_error and labels[i].contribution != "error":
                labels[i].contribution = "failed_attempt"
                labels[i].reason = f"abandoned at unit {k}: {labels[i].reason}"
        start = k + 1
    return labels


def _group(labels: list[_Label]) -> list[Step]:
    """Contiguous units with the same label become one step, linked by what they use."""
    steps: list[Step] = []
    provided_by: dict[str, int] = {}  # id -> latest step that stated or computed it
    needs: set[str] = set()
    for index, label in enumerate(labels):
        previous = steps[-1] if steps else None
        same_label = previous and (previous.function, previous.contribution) == (
            label.function,
            label.contribution,
        )
        if same_label:
            previous.last_unit = index
        else:
            needs = set()
            steps.append(
                Step(
                    index=len(steps),
                    first_unit=index,
                    last_unit=index,
                    function=label.function,
                    contribution=label.contribution,
                    reason=label.reason,
                )
            )
        step = steps[-1]
        needs |= label.needs
        step.depends_on = sorted(
            {provided_by[i] for i in needs if i in provided_by and provided_by[i] != step.index}
        )
        for i in label.provides:
            provided_by[i] = step.index
    return steps


def _show(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)
