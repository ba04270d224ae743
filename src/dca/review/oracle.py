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

import ast
import re
from dataclasses import dataclass, field

from ..problems.answer import check_answer
from ..records import Operation, Problem, Review, Step, Unit

_NUMBER = re.compile(r"(?<![\d.,])\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d,]*\d)")
_MULTIPLY = re.compile(r"(?<=\d)\s*[x×]\s*(?=[\d$(])")
_ARITHMETIC_CHARS = set("0123456789.,$ +-*/()")
_RESULT = re.compile(r"\s*\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
_VERIFICATION = re.compile(r"\b(?:check|verify|double-check|confirm|make sure)", re.IGNORECASE)
_TASK_WORDS = re.compile(
    r"\b(?:how many|how much|what is|we need to|need to find|find out|the question)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z']+")


@dataclass
class _Equation:
    operands: list[float]
    result: float
    correct: bool


@dataclass
class _Label:
    function: str
    contribution: str
    reason: str
    provides: set[str] = field(default_factory=set)
    """Fact or operation ids this unit states or computes."""
    needs: set[str] = field(default_factory=set)
    """Ids this unit uses."""


class OracleReviewer:
    """Reviews traces on synthetic problems from their known causal structure; on a problem
    of another domain with its own oracle (`dca.domains`: logic, knights-and-knaves), hands
    the trace to that oracle."""

    name = "oracle"

    def review(
        self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str
    ) -> Review:
        from ..domains import domain_of

        domain = domain_of(problem)
        if domain.name != "arithmetic" and domain.oracle is not None:  # the domain's own oracle (logic, puzzles)
            review = domain.oracle().review(problem, trace_completion, units, trace_id=trace_id)
            review.reviewer = self.name
            return review
        if not problem.operations:
            return Review(
                trace_id=trace_id,
                reviewer=self.name,
                units=units,
                status="failed",
                error=f"problem {problem.id} has no known structure (not a synthetic problem)",
                unreviewed_units=[u.index for u in units],
            )
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

    def label(self, units: list[Unit]) -> list[_Label]:
        self.seen: set[float] = set()
        # Values derived by correct off-graph equations over needed values: value -> unit.
        self.derived: dict[float, int] = {}
        self.final_computed = False
        labels: list[_Label] = []
        for unit in units:
            label = self._label_unit(unit.text, labels)
            labels.append(label)
            self.seen.update(_numbers(unit.text))
            self.final_computed |= self.final.id in label.provides
        return labels

    def _label_unit(self, text: str, earlier: list[_Label]) -> _Label:
        numbers = _numbers(text)
        check = check_answer(text, self.problem.answer)
        if check.outcome == "correct":
            return _Label(
                "conclusion", "solved", "states the right final answer", needs={self.final.id}
            )
        if check.outcome == "wrong":
            return _Label("conclusion", "error", f"states a wrong final answer ({check.answer})")

        equations = _equations(text)
        wrong = [e for e in equations if not e.correct]
        if wrong:
            reason = f"wrong arithmetic (... = {_show(wrong[0].result)})"
            return _Label("computation", "error", reason)
        if _VERIFICATION.search(text) and numbers and set(numbers) <= self.seen:
            return _Label("verification", "irrelevant", "re-checks values already known")
        if equations:
            return self._label_equations(equations, len(earlier), earlier)
        if numbers:
            return self._label_numbers(numbers)
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


def _numbers(text: str) -> list[float]:
    """The numbers a text mentions ("1,200" -> 1200.0, "$5" -> 5.0, "3.5" -> 3.5)."""
    return [float(m.group(1).replace(",", "") + (m.group(2) or "")) for m in _NUMBER.finditer(text)]


def _equations(text: str) -> list[_Equation]:
    """Each ``left = right`` in the text whose left side is arithmetic with an operator."""
    text = _MULTIPLY.sub(" * ", text).replace("÷", "/")
    equations = []
    for equals in re.finditer(r"(?<![<>=!])=(?!=)", text):
        left_start = equals.start()
        while left_start > 0 and text[left_start - 1] in _ARITHMETIC_CHARS:
            left_start -= 1
        left = text[left_start : equals.start()].strip(" ,.+-*/")
        right = _RESULT.match(text, equals.end())
        value = _evaluate(left)
        if right is None or value is None or not re.search(r"\d\s*[-+*/]", left):
            continue
        result = float(right.group(1).replace(",", "") + (right.group(2) or ""))
        decimals = len(right.group(2) or ".") - 1
        tolerance = 0.5 * 10.0**-decimals if decimals else 1e-9  # "10 / 3 = 3.33" is right
        equations.append(
            _Equation(_numbers(left), result, correct=abs(value - result) <= tolerance + 1e-9)
        )
    return equations


def _evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression of numbers, + - * / and parentheses."""
    expression = re.sub(r"(?<=\d),(?=\d{3})", "", expression.replace("$", ""))
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    return _evaluate_node(tree.body)


def _evaluate_node(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _evaluate_node(node.operand)
        return None if value is None else -value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate_node(node.left), _evaluate_node(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div) and right != 0:
            return left / right
    return None


def _show(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)
