"""Shared measures of reasoning text: numbers, arithmetic, verification and backtracking
phrases, word counts, useful steps and tokens per insight.

One home for each (issue 9 item 7): the reviewers (oracle, reference), the counterfactual
reviewer, the edit pipeline, the faithfulness probes and the evaluation all read text through
these functions, so that "a number", "a computation" or "a check" means the same everywhere.

**Numbers** (`NUMBER`, `numbers`, `number_matches`): digits with thousands separators
(``1,200``), decimals with or without a leading digit (``3.5``, ``.5``), an optional
currency sign (``$5``) and an optional leading minus when it is a sign, not an operator
(``-250`` at the start of an expression or after ``=``/``(``/a space, but not the ``-`` of
``10-4``). A point that ends a sentence is not a decimal point.

**Arithmetic** (`equations`): every chain ``e0 = e1 = ... = en`` in which ``e0`` holds an
operator (``+ - * /``, also ``x``, ``×``, ``÷`` between numbers, ``N%`` read as ``N/100``)
is read as written: leading signs and points are kept (``-250+750=500``, ``.5*10=5``);
unit words after a number are skipped (``66 fish * 1/3 = 22``, ``$20/hour * 35 hours =
700``); each link of a chain must
hold (``20 * 5 - 4 = 100 - 4 = 96``), a rounded right side is allowed its rounding
(``10 / 3 = 3.33``); GSM8K calculator annotations ``<<a*b=c>>`` are read as equations of
their own and removed from the visible text, so the equation they annotate is read too.

**Phrases** (`VERIFICATION`, `BACKTRACKING`): checking what was computed ("let me check",
"verify", "double-check", "to confirm", "make sure") and abandoning or revising it ("wait",
"actually", "I made a mistake", "let me redo").

**Counts**: `word_count` (whitespace-separated words, used where no tokenizer is given to
count generated text), `word_token_count` (words and punctuation marks, the "words"
tokenizer of `dca eval`/`dca edit`), `useful_steps` (steps labelled with a
`USEFUL_CONTRIBUTIONS` label: the insights), `tokens_per_insight` (tokens ÷ useful steps,
averaged over the traces that have at least one) and `token_counter` (a text's tokens under a
model's tokenizer, no special tokens); `labelled_tokens` (the tokens of a review's labelled
units and of those labelled irrelevant: the irrelevant share).

This module is part of the torch-free core.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .records import USEFUL_CONTRIBUTIONS, Consensus, Review, Step

__all__ = [
    "BACKTRACKING",
    "NUMBER",
    "VERIFICATION",
    "Equation",
    "equations",
    "evaluate",
    "format_number",
    "has_computation",
    "labelled_tokens",
    "number_matches",
    "number_value",
    "numbers",
    "token_counter",
    "tokens_per_insight",
    "useful_steps",
    "word_count",
    "word_token_count",
]

# ---------------------------------------------------------------------------------------------
# Numbers

#: A number as written in reasoning text (see the module docstring). Groups: ``sign``,
#: ``int`` (digits, maybe with thousands commas), ``dec`` (the decimal part with its point).
NUMBER = re.compile(
    r"(?:(?<![\w)\].])(?P<sign>-)(?=\$?\.?\d))?"  # a minus that is a sign, not an operator
    r"\$?"
    r"(?:(?<![\w.,])|(?<=\$)|(?<=-))"  # not inside a word or another number
    r"(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?|(?P<dec_only>\.\d+))"
    r"(?![\d])"
)


def number_value(match: re.Match[str]) -> float:
    """The value of a `NUMBER` match ("1,200" -> 1200.0, "$.5" -> 0.5, "-3" -> -3.0)."""
    integer = (match.group("int") or "0").replace(",", "")
    decimals = match.group("dec") or match.group("dec_only") or ""
    value = float(integer + decimals)
    return -value if match.group("sign") else value


def number_matches(text: str) -> list[re.Match[str]]:
    """The `NUMBER` matches of a text, in order."""
    return list(NUMBER.finditer(text))


def numbers(text: str, *, signed: bool = False) -> list[float]:
    """The numbers a text mentions, in order; unsigned unless `signed` (a reviewer compares
    magnitudes: "a loss of -5" and "5" state the same quantity)."""
    values = [number_value(m) for m in NUMBER.finditer(text)]
    return values if signed else [abs(v) for v in values]


def format_number(value: float, like: str = "") -> str:
    """`value` written as in text: integers without a point, others with up to 2 decimals;
    with thousands commas when `like` (the number it replaces) has them."""
    if float(value).is_integer():
        text = f"{int(value):,}" if "," in like else str(int(value))
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


# ---------------------------------------------------------------------------------------------
# Phrases

#: Phrases of verification (checking what was computed).
VERIFICATION = re.compile(
    r"\b(?:let(?:'s| me| us) (?:double[- ])?check|double[- ]check|re-?check|check(?:ing|s)?|verify"
    r"|verif(?:ied|ying|ication)|to confirm|confirm(?:s|ed|ing)?|make sure|sanity check)\b",
    re.IGNORECASE,
)

#: Phrases of backtracking (abandoning or revising an earlier step).
BACKTRACKING = re.compile(
    r"\b(?:wait|actually|hmm+|oops|on second thought|i made a mistake|that(?:'s| is) (?:not right|wrong|incorrect)"
    r"|let me (?:redo|try again|reconsider|recalculate)|correction|re-?(?:calculate|evaluate|consider)|mistake)\b",
    re.IGNORECASE,
)

_EQUALS = re.compile(r"(?<![<>=!])=(?!=)")


def has_computation(text: str) -> bool:
    """Whether a text holds an ``=`` and a digit (a computation, however it is written)."""
    return bool(_EQUALS.search(text)) and any(c.isdigit() for c in text)


# ---------------------------------------------------------------------------------------------
# Arithmetic


@dataclass
class Equation:
    """One chain ``e0 = e1 = ... = en`` read from a text."""

    operands: list[float]
    """The numbers of ``e0`` (unsigned, as `numbers` reads them)."""
    result: float
    """The magnitude of the value the chain ends with (``en``)."""
    correct: bool
    """Every link holds (within the rounding of its right side)."""
    intermediates: list[float] = field(default_factory=list)
    """Values of the middle links (``100`` in ``20 * 5 - 4 = 100 - 4 = 96``)."""
    text: str = ""
    """The chain as read (annotations: ``<<...>>``)."""


_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_MULTIPLY = re.compile(r"(?<=[\d)%])\s*[x×·]\s*(?=[\d$(.])")
# A token of an arithmetic chain: a number (with % maybe), an operator, a parenthesis, "=".
_TOKEN = re.compile(
    r"\s*(?:(?P<number>" + NUMBER.pattern + r")(?P<percent>\s*%)?"
    r"|(?P<op>[-+*/÷])|(?P<open>\()|(?P<close>\))|(?P<eq>(?<![<>=!])=(?!=)))"
)
# Unit words a number may carry before the next operator or "=" ("66 fish * 1/3").
# A unit is a word, maybe a rate ("miles/train", "$20/hour": the "/hour").
_UNIT = r"(?:\s+[^\W\d_][\w'-]*(?:/[^\W\d_][\w'-]*)?|/[^\W\d_][\w'-]*)"
# A unit written against the number ("300g", "5kg/day"); a single other letter is a
# variable ("2L + 16"), which ends the arithmetic.
_ATTACHED = r"(?:[^\W\d_]{2,}|[gmshk])(?:/[^\W\d_][\w'-]*)?"
_UNIT_WORDS = re.compile(r"(?:" + _ATTACHED + r")?" + _UNIT + r"{0,3}(?<=[^\d\s])(?=\s*(?:[-+*/÷x×=]|$))")


def equations(text: str) -> list[Equation]:
    """Every arithmetic chain in a text (see the module docstring)."""
    found: list[Equation] = []
    for match in _ANNOTATION.finditer(text):
        found += _chains(match.group(1), annotation=True)
    visible = _ANNOTATION.sub("", text)
    for equation in _chains(visible):
        if not any(_same(equation, other) for other in found):
            found.append(equation)
    return found


def _same(a: Equation, b: Equation) -> bool:
    return a.correct == b.correct and abs(a.result - b.result) < 1e-9 and sorted(a.operands) == sorted(b.operands)


def _chains(text: str, *, annotation: bool = False) -> list[Equation]:
    text = _MULTIPLY.sub(" * ", text)
    result = []
    for tokens, raw in _token_runs(text):
        segments: list[list[tuple[str, str]]] = [[]]
        for kind, value in tokens:
            if kind == "eq":
                segments.append([])
            else:
                segments[-1].append((kind, value))
        segments = _trim_chain(segments)
        if segments is None:
            continue
        values = [_evaluate_tokens(s) for s in segments]
        if any(v is None for v in values):
            continue
        correct = all(
            abs(values[i] - values[i + 1]) <= _tolerance(segments[i + 1]) + 1e-9 * max(1.0, abs(values[i]))
            for i in range(len(values) - 1)
        )
        operands = [abs(float(v.strip("()").split("/")[0])) for k, v in segments[0] if k == "number"]
        result.append(
            Equation(
                operands=operands,
                result=abs(values[-1]),
                correct=correct,
                intermediates=[float(v) for v in values[1:-1]],
                text=f"<<{raw}>>" if annotation else raw.strip(),
            )
        )
    return result


def _token_runs(text: str) -> Iterable[tuple[list[tuple[str, str]], str]]:
    """Maximal runs of arithmetic tokens holding an "=" (unit words after numbers skipped)."""
    position = 0
    run: list[tuple[str, str]] = []
    run_start = 0
    while position <= len(text):
        match = _TOKEN.match(text, position) if position < len(text) else None
        if match and match.end() > position:
            if not run:
                run_start = match.start()
            kind = match.lastgroup if match.group("number") is None else "number"
            if kind == "number" and run and run[-1][0] in ("number", "close"):
                # Two values with no operator between ("= 14 4-packs"): the chain ended.
                if any(k == "eq" for k, _ in run):
                    yield run, text[run_start:position]
                run, run_start = [], match.start()
            if kind == "number":
                number = NUMBER.match(match.group("number"))
                value = repr(number_value(number))
                if match.group("percent"):
                    value = f"({value}/100)"
                run.append(("number", value))
                words = _UNIT_WORDS.match(text, match.end())
                position = words.end() if words and _TOKEN.match(text, words.end()) else match.end()
            else:
                run.append((kind, match.group(kind)))
                position = match.end()
            continue
        if any(k == "eq" for k, _ in run):
            yield run, text[run_start:position]
        run = []
        position += 1


def _trim_chain(segments: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]] | None:
    """Drop empty links and dangling operators; None unless the first link computes."""
    cleaned = []
    for i, segment in enumerate(segments):
        segment = list(segment)
        while segment and segment[-1][0] == "op":
            segment.pop()  # "= 5 +" : the operator belongs to the words after
        if i == 0:
            while segment and segment[0][0] == "op" and segment[0][1] != "-":
                segment.pop(0)  # "... * 3 + 4 = 7": a leading * or + has lost its left side
            while segment and segment[0][0] == "close":
                segment.pop(0)
        cleaned.append(segment)
    # Empty links at the ends ("x = 5 + 3 = 8" starts at "="; "... = 8 =") are dropped.
    while cleaned and not cleaned[0]:
        cleaned.pop(0)
    while len(cleaned) > 1 and not cleaned[-1]:
        cleaned.pop()
    if any(not s for s in cleaned) or len(cleaned) < 2:
        return None
    if not any(k == "op" and (v != "-" or j > 0) for j, (k, v) in enumerate(cleaned[0])):
        return None  # "5 = 5", "-3 = -3": nothing is computed
    if not any(k == "number" for k, _ in cleaned[0]):
        return None
    return cleaned


def _tolerance(segment: list[tuple[str, str]]) -> float:
    """Half a unit in the last written decimal of a single-number link, else none."""
    numbers_in = [v for k, v in segment if k == "number"]
    if len(segment) != 1 or len(numbers_in) != 1 or "/100" in numbers_in[0]:
        return 0.0
    written = numbers_in[0]
    if "." not in written or written.endswith(".0"):
        return 0.0
    decimals = len(written.split(".")[1])
    return 0.5 * 10.0**-decimals


def _evaluate_tokens(segment: list[tuple[str, str]]) -> float | None:
    expression = " ".join({"÷": "/"}.get(v, v) if k == "op" else v for k, v in segment)
    return evaluate(expression)


def evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression of numbers, + - * / and parentheses; None when
    it is not one (or divides by zero). Commas between thousands and ``$`` are ignored."""
    expression = re.sub(r"(?<=\d),(?=\d{3})", "", expression.replace("$", ""))
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None
    return _evaluate_node(tree.body)


def _evaluate_node(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate_node(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
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


# ---------------------------------------------------------------------------------------------
# Counts


def word_count(text: str) -> int:
    """Whitespace-separated words."""
    return len(text.split())


_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")


def word_token_count(text: str) -> int:
    """Words and punctuation marks: the token count used where no tokenizer is given."""
    return len(_WORD_OR_MARK.findall(text))


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """The count of a text's tokens under a Hugging Face `tokenizer` (no special tokens added):
    the one way a text is measured in model tokens (completion and CoT tokens in `dca eval`,
    the experiment's measures, `dca edit --tokenizer`)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def useful_steps(labels: Review | Consensus | Sequence[Step]) -> int:
    """Steps labelled with a `USEFUL_CONTRIBUTIONS` label (the insights)."""
    steps = labels if isinstance(labels, Sequence) else labels.steps
    return sum(step.contribution in USEFUL_CONTRIBUTIONS for step in steps)


def labelled_tokens(review: Review, count_tokens: Callable[[str], int]) -> tuple[int, int]:
    """(tokens of the units `review` labels, tokens of those labelled ``irrelevant``): the
    parts of the irrelevant share (token-weighted, so a long detour weighs more than a short one)."""
    labelled = irrelevant = 0
    for unit, label in zip(review.units, review.unit_contributions()):
        if label is None:
            continue
        n = count_tokens(unit.text)
        labelled += n
        irrelevant += n if label == "irrelevant" else 0
    return labelled, irrelevant


def tokens_per_insight(pairs: Iterable[tuple[float, int]]) -> float | None:
    """Mean of tokens ÷ useful steps over (tokens, useful steps) pairs with at least one
    useful step; None when there is none."""
    ratios = [tokens / useful for tokens, useful in pairs if useful]
    return sum(ratios) / len(ratios) if ratios else None
