"""Final-answer extraction and checking (the verifier that fixes the sequence reward).

Two steps, kept apart:

1. **Locate** the final-answer statement with a regex for its marker. The asked form
   (`ANSWER_PREFIX`) is a line starting with ``Answer:`` ("strict"); the forms small models
   write instead are accepted as "lenient": ``answer: 8`` / ``**Answer:** 8`` anywhere in a
   line, ``The answer is 8.``, ``The final answer is 8``, ``\\boxed{8}``, ``#### 8``
   (GSM8K's form) and ``A: 8`` at the start of a line (question-answer style CoTs).
   The last strict statement wins; without one, the last lenient statement.
2. **Parse and compare** the value with `math_verify` (``parse`` on the text from the marker
   to the end of its line, ``verify`` against the parsed gold answer). No home-made number
   regex decides correctness: "$1,200", "1200.0", "\\frac{1}{2}" and "0.5" are compared
   as numbers.

A statement whose value math_verify cannot parse does not count, and the next candidate is
tried; a completion with no parseable statement is a ``format_failure`` (reported apart
from ``wrong``). Nothing here raises on model text: math_verify errors and timeouts count as
"not parsed". Signs count: ``A: -200`` against gold ``200`` is wrong. math_verify's timeouts use ``signal.alarm``, which only works in the main
thread, so off the main thread they are switched off; instead, inputs are capped at
`MAX_STATEMENT_CHARS` characters and parsed values holding a power with a large or
non-numeric exponent ("10^10^10^10", whose comparison would never end) are not compared
(such an answer counts as wrong).
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any

#: The asked form of the final line: ``Answer: <value>`` (every domain's prompt asks for it).
ANSWER_PREFIX = "Answer:"

#: The system prompt of arithmetic problems (synthetic, GSM8K); other domains declare theirs in
#: `dca.domains.builtin`. The chat prompt of any problem is `dca.domains.chat_messages`.
SYSTEM_PROMPT = (
    "Solve the math word problem step by step, using only the facts the question needs. "
    f"End with a last line of the form '{ANSWER_PREFIX} <number>'."
)


#: Longest statement text handed to math_verify (guards against pathological inputs).
MAX_STATEMENT_CHARS = 200
#: Largest exponent in a parsed answer that is still compared (see `_is_tame`).
MAX_EXPONENT = 64
#: Seconds math_verify may spend on one parse or comparison (main thread only).
TIMEOUT_SECONDS = 2


@functools.cache
def _extraction() -> tuple:
    # math_verify (and sympy under it) cost seconds to import: only commands that check an
    # answer pay for them, not every command that merely imports dca.problems.
    from math_verify import ExprExtractionConfig, LatexExtractionConfig  # heavy: math-verify (sympy) loads only when an answer is parsed

    return (LatexExtractionConfig(), ExprExtractionConfig())

_STRICT = re.compile(r"^[ \t]*Answer:", re.MULTILINE)
_LENIENT = re.compile(
    r"(?:\b(?:the\s+)?(?:final\s+)?answer\s+is\b"
    r"|\*{0,2}\banswer\b\*{0,2}\s*:"
    r"|\\boxed\s*\{"
    r"|^[ \t]*####"
    r"|^[ \t]*A[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
# End of a sentence: terminal punctuation followed by whitespace or the end of the text
# (so the point in "3.5" does not end one).
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@dataclass(kw_only=True)
class ExtractedAnswer:
    """The final answer found in a completion."""

    answer: str | None
    """The value as math_verify extracted it (e.g. ``"1200"``), or None when none was found."""
    form: str | None
    """``"strict"`` (the asked ``Answer: <number>`` line), ``"lenient"`` or None."""
    span: tuple[int, int] | None
    """Character span ``[start, end)`` of the final-answer statement (its sentence or line)."""


@dataclass(kw_only=True)
class AnswerCheck(ExtractedAnswer):
    """An extracted answer compared with the gold answer."""

    outcome: str
    """``"correct"``, ``"wrong"`` or ``"format_failure"`` (no final answer found)."""
    reward: float
    """1.0 when correct, else 0.0."""


def extract_answer(completion: str) -> ExtractedAnswer:
    """The final answer of a completion, its form and the span of its statement."""
    found = _find_statement(completion)
    if found is None:
        return ExtractedAnswer(answer=None, form=None, span=None)
    _, answer, form, span = found
    return ExtractedAnswer(answer=answer, form=form, span=span)


def check_answer(completion: str, gold: str) -> AnswerCheck:
    """Compare a completion's final answer with `gold` (e.g. ``"18"``)."""
    found = _find_statement(completion)
    if found is None:
        return AnswerCheck(
            answer=None, form=None, span=None, outcome="format_failure", reward=0.0
        )
    parsed, answer, form, span = found
    correct = _verify(_parse_gold(gold), parsed)
    return AnswerCheck(
        answer=answer,
        form=form,
        span=span,
        outcome="correct" if correct else "wrong",
        reward=1.0 if correct else 0.0,
    )


def _find_statement(completion: str) -> tuple[list[Any], str, str, tuple[int, int]] | None:
    """(parsed value, value text, form, span) of the final statement that parses."""
    candidates = [(m, "strict") for m in reversed(list(_STRICT.finditer(completion)))]
    candidates += [(m, "lenient") for m in reversed(list(_LENIENT.finditer(completion)))]
    for match, form in candidates:
        line_end = completion.find("\n", match.start())
        line_end = len(completion) if line_end < 0 else line_end
        parsed = _parse(completion[match.start() : line_end])
        if parsed:
            return parsed, _as_text(parsed[0]), form, _statement_span(completion, match, line_end)
    return None


def _statement_span(completion: str, match: re.Match[str], line_end: int) -> tuple[int, int]:
    """The sentence holding the marker: from the previous sentence end (or line start) to
    the next sentence end after the marker (or line end), whitespace trimmed."""
    line_start = completion.rfind("\n", 0, match.start()) + 1
    start = line_start
    for end in _SENTENCE_END.finditer(completion, line_start, match.start()):
        start = end.end()
    end_match = _SENTENCE_END.search(completion, match.end(), line_end)
    end = end_match.end() if end_match else line_end
    while start < end and completion[start].isspace():
        start += 1
    while end > start and completion[end - 1].isspace():
        end -= 1
    return start, end


def _as_text(value: Any) -> str:
    """A parsed value as plain text: ``"1200"`` for 1200.0, ``"3.5"``, ``"1/2"``."""
    import sympy  # heavy: sympy loads only when an answer is parsed

    if isinstance(value, sympy.Number) and value.is_integer:
        return str(int(value))
    if isinstance(value, sympy.Float):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _timeout() -> int | None:
    """math_verify's signal-based timeout works only in the main thread."""
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list[Any]:
    """math_verify's parse of a statement: [] when nothing parses (never raises)."""
    from math_verify import parse  # heavy: math-verify (sympy) loads only when an answer is parsed

    try:
        return parse(
            text[:MAX_STATEMENT_CHARS],
            extraction_config=_extraction(),
            fallback_mode="no_fallback",
            parsing_timeout=_timeout(),
        )
    except Exception:  # math_verify's TimeoutException derives from Exception
        return []


def _is_tame(value: Any) -> bool:
    """False for sympy values with a power whose exponent is not a small number."""
    import sympy  # heavy: sympy loads only when an answer is parsed

    if not isinstance(value, sympy.Basic):
        return True
    return all(
        isinstance(power.exp, sympy.Number) and abs(power.exp) <= MAX_EXPONENT
        for power in value.atoms(sympy.Pow)
    )


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> list[Any]:
    """Gold answers repeat across a group of samples, so their parses are cached."""
    return _parse(gold.replace(",", ""))


def _verify(gold: list[Any], prediction: list[Any]) -> bool:
    from math_verify import verify  # heavy: math-verify (sympy) loads only when an answer is checked

    if not all(_is_tame(value) for value in prediction):
        return False
    try:
        return bool(verify(gold, prediction, timeout_seconds=_timeout()))
    except Exception:
        return False
