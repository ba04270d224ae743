"""Answer checking for problems whose answer is a label or a short text, not a number.

`dca.problems.answer` compares numbers with math_verify; logic (True / False / Unknown),
common sense (Yes / No) and puzzle answers ("Amelia is a hero, and Elizabeth is a
villain.") are text. This module finds the final-answer statement the same way, by its
marker, and hands back its text:

- **strict**: the last line that starts with ``Answer:`` (the asked form, `dca.problems.answer`);
- **lenient**: the last ``answer: X`` / ``**Answer:** X`` anywhere in a line, or
  ``the (final) answer is X``.

`check_label` then compares the statement's first word with the gold label, case- and
markdown-insensitively, with synonyms (``yes`` = ``true``, ``no`` = ``false`` where the
label set allows it). A statement whose first word is not one of the allowed labels does
not count, and the previous candidate is tried; a completion without any is a
``format_failure``, as for numbers.
"""

from __future__ import annotations

import re

from .answer import AnswerCheck, ExtractedAnswer, check_answer

_STRICT = re.compile(r"^[ \t]*\**Answer\**:\**[ \t]*(?P<value>.*)$", re.MULTILINE)
_LENIENT = re.compile(
    r"(?:\b(?:the\s+)?(?:final\s+)?answer\s+is\b:?|\*{0,2}\banswer\b\*{0,2}\s*:\**)[ \t]*(?P<value>[^\n]*)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z]+")

#: Words that name the same label.
SYNONYMS = {"yes": "true", "no": "false", "true": "true", "false": "false", "unknown": "unknown",
            "uncertain": "unknown", "undetermined": "unknown", "cannot": "unknown"}  # fmt: skip


def answer_statements(completion: str) -> list[tuple[str, str, tuple[int, int]]]:
    """``(value text, form, span)`` of every final-answer statement, the preferred first:
    strict statements from the last to the first, then lenient ones likewise. The span is
    the statement's line, whitespace trimmed."""
    found = []
    for pattern, form in ((_STRICT, "strict"), (_LENIENT, "lenient")):
        for match in reversed(list(pattern.finditer(completion))):
            value = match.group("value").strip().strip("*").strip()
            line_start = completion.rfind("\n", 0, match.start()) + 1
            line_end = completion.find("\n", match.start())
            line_end = len(completion) if line_end < 0 else line_end
            start, end = line_start, line_end
            while start < end and completion[start].isspace():
                start += 1
            while end > start and completion[end - 1].isspace():
                end -= 1
            found.append((value, form, (start, end)))
    return found


def normalize_label(text: str) -> str | None:
    """The label a value text starts with (lower case, synonyms folded), or None."""
    word = _WORD.search(text)
    if word is None:
        return None
    word_text = word.group(0).lower()
    return SYNONYMS.get(word_text, word_text)


def extract_label(completion: str, labels: tuple[str, ...]) -> ExtractedAnswer:
    """The final label of a completion among `labels` (compared after `normalize_label`)."""
    allowed = {normalize_label(label) for label in labels}
    for value, form, span in answer_statements(completion):
        label = normalize_label(value)
        if label in allowed:
            return ExtractedAnswer(answer=_display(label, labels), form=form, span=span)
    return ExtractedAnswer(answer=None, form=None, span=None)


def check_label(completion: str, gold: str, labels: tuple[str, ...]) -> AnswerCheck:
    """Compare a completion's final label with `gold` (one of `labels`)."""
    found = extract_label(completion, labels)
    if found.answer is None:
        return AnswerCheck(answer=None, form=None, span=None, outcome="format_failure", reward=0.0)
    correct = normalize_label(found.answer) == normalize_label(gold)
    return AnswerCheck(
        answer=found.answer, form=found.form, span=found.span,
        outcome="correct" if correct else "wrong", reward=1.0 if correct else 0.0,
    )  # fmt: skip


def extract_text_answer(completion: str) -> ExtractedAnswer:
    """The text of the final-answer statement (for free-form answers a scorer reads)."""
    for value, form, span in answer_statements(completion):
        if value:
            return ExtractedAnswer(answer=value, form=form, span=span)
    return ExtractedAnswer(answer=None, form=None, span=None)


def check_against_gold(completion: str, gold: str) -> AnswerCheck:
    """Check against a bare gold answer (no problem at hand, e.g. a probe's continuation):
    a label gold (True / False / Unknown / Yes / No) is compared as a label, anything else
    as a number (`dca.problems.answer.check_answer`)."""
    label = normalize_label(gold)
    if label in ("true", "false", "unknown") and gold.strip().lower().strip(".") in SYNONYMS:
        return check_label(completion, gold, LABEL_SETS[label])
    return check_answer(completion, gold)


#: The label set a label answer belongs to, for `check_against_gold`.
LABEL_SETS = {"true": ("True", "False", "Unknown"), "false": ("True", "False", "Unknown"), "unknown": ("True", "False", "Unknown")}


def _display(label: str, labels: tuple[str, ...]) -> str:
    for candidate in labels:
        if normalize_label(candidate) == label:
            return candidate
    return label
