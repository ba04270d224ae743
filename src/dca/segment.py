"""Split a completion into units: the small numbered spans a reviewer groups into steps.

A unit is a line, a sentence, or a clause of a sentence that holds several computations
("3 + 4 = 7 apples, and then 7 * 2 = 14 pears." is two units). Units tile the completion
exactly, so reviewers answer with unit indices and credit maps back to characters without
any fuzzy matching.

Invariants (checked by tests/test_segment.py):

- ``"".join(u.text for u in units) == text`` and ``units[i].text == text[u.start:u.end]``;
- indices are ``0..n-1``, spans are contiguous (``units[i].end == units[i + 1].start``) and
  non-empty; empty text gives ``[]``;
- whitespace between two units is the *leading edge of the following unit*, the way BPE
  tokenizers attach a space to the token after it (" and", "Ġ14"), so a token rarely
  straddles two units. Whitespace at the very start of the text leads the first unit,
  whitespace at the very end trails the last one; so only text that is all whitespace
  gives a whitespace-only unit (one unit, the whole text);
- a line break always ends a unit: no unit holds content on two different lines.

How boundaries are found: each unit ends right after its last content character. A
boundary is placed at the end of each line's content, after each sentence terminator
(``.``, ``!``, ``?`` and closing quotes or brackets) that is followed by whitespace, and
after a ``,`` or ``;`` that separates two clauses which both hold a computation. A
terminator does not end a sentence when it is part of an ellipsis ("..." or "…"), of an
abbreviation ("e.g.", "Mr.", "vs.", "U.S."), or of a list marker that opens a line or a
sentence ("1. ", "a. "). Decimals, prices and equations ("3.5", "$1.50", "12 / 4 = 3")
never split because their periods are not followed by whitespace. CJK full stops ("。"),
which are not followed by whitespace either, do not split.
"""

from __future__ import annotations

import re

from dca.records import Unit

__all__ = ["segment"]

#: Characters that end a line (the same set `str.splitlines` splits on).
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

#: A run of sentence terminators with the closing quotes or brackets that follow it,
#: ending before whitespace (the end of a line's content counts as whitespace: the caller
#: matches inside one line's content and the line end is already a boundary). The
#: look-behind and possessive quantifiers keep long runs ("......") linear.
_TERMINATOR = re.compile(r"(?<![.!?…])[.!?…]++[\"'”’»)\]]*+(?=\s)")

#: A clause separator inside a sentence: ``,`` or ``;`` followed by whitespace.
_CLAUSE_SEPARATOR = re.compile(r"[,;](?=\s)")

#: A computation: an ``=`` (not part of ``==``, ``<=``, ``>=``, ``!=``) in a clause that
#: also holds a digit.
_EQUALS = re.compile(r"(?<![<>=!])=(?!=)")
_DIGIT = re.compile(r"\d")

#: Words (lower-cased, without their final period) after which a period does not end a
#: sentence.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs cf approx fig figs eq eqs al viz resp ca incl
    dept est min max avg no nos vol pp""".split()
)

#: Words matching this are dotted abbreviations: "e.g", "i.e", "a.m", "U.S".
_DOTTED_ABBREVIATION = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")

#: A list marker's label: "1", "12", "a", "B" (the marker is the label plus "." or ")").
_LIST_LABEL = re.compile(r"\d{1,3}|[^\W\d_]")


def segment(text: str) -> list[Unit]:
    """Split `text` into units with exact character spans (see the module docstring)."""
    if not text:
        return []
    ends: set[int] = set()
    for line_start, line_end in _line_content_spans(text):
        for sentence_start, sentence_end in _sentence_spans(text, line_start, line_end):
            ends.update(_clause_ends(text, sentence_start, sentence_end))
            ends.add(sentence_end)
    # A boundary needs content after it; otherwise the trailing whitespace would be a unit
    # of its own, so it trails the last unit instead.
    last_content_end = len(text.rstrip())
    boundaries = sorted(end for end in ends if 0 < end < last_content_end)
    starts = [0, *boundaries]
    stops = [*boundaries, len(text)]
    return [
        Unit(index=i, start=start, end=stop, text=text[start:stop])
        for i, (start, stop) in enumerate(zip(starts, stops))
    ]


def _line_content_spans(text: str) -> list[tuple[int, int]]:
    """The span of each line's content, without surrounding whitespace; blank lines skipped."""
    spans = []
    line_start = 0
    for line_end in [m.start() for m in _LINE_BREAK.finditer(text)] + [len(text)]:
        line = text[line_start:line_end]
        content = line.strip()
        if content:
            start = line_start + (len(line) - len(line.lstrip()))
            spans.append((start, start + len(content)))
        line_start = line_end + 1
    return spans


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of one line's content ``text[start:end]``, each without surrounding whitespace."""
    spans = []
    sentence_start = start
    for match in _TERMINATOR.finditer(text, start, end):
        if not _ends_sentence(text, match, sentence_start=sentence_start):
            continue
        spans.append((sentence_start, match.end()))
        sentence_start = match.end()
        while text[sentence_start].isspace():  # a terminator is always followed by content
            sentence_start += 1
    spans.append((sentence_start, end))
    return spans


def _ends_sentence(text: str, match: re.Match[str], sentence_start: int) -> bool:
    """Whether a terminator match really ends a sentence (see the module docstring)."""
    marks = match.group().rstrip("\"'”’»)]")
    if ".." in marks or "…" in marks:
        return False  # an ellipsis: the thought goes on
    if marks != ".":
        return True  # "!", "?", "?!" always end a sentence
    word_start = match.start()
    while word_start > sentence_start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : match.start()]
    if word_start == sentence_start and _LIST_LABEL.fullmatch(word):
        return False  # "1. First, ..." or "a. ..." opening a line or a sentence
    bare = word.lstrip("(\"'“‘[").lower()
    return bare not in _ABBREVIATIONS and not _DOTTED_ABBREVIATION.fullmatch(bare)


def _clause_ends(text: str, start: int, end: int) -> list[int]:
    """Clause boundaries inside the sentence ``text[start:end]``.

    The sentence is cut at its clause separators into pieces; a new unit begins at a piece
    that holds a computation when the unit so far already holds one. Pieces without a
    computation join the unit before them (or the first computation's unit when they lead),
    so "First, 3 + 4 = 7, which is odd, and 7 * 2 = 14." gives "First, 3 + 4 = 7, which is
    odd," and " and 7 * 2 = 14.".
    """
    separators = [m.end() for m in _CLAUSE_SEPARATOR.finditer(text, start, end)]
    if not separators:
        return []
    piece_starts = [start, *separators]
    piece_ends = [*separators, end]
    ends = []
    unit_has_computation = False
    for piece_start, piece_end in zip(piece_starts, piece_ends):
        piece = text[piece_start:piece_end]
        has_computation = bool(_EQUALS.search(piece) and _DIGIT.search(piece))
        if has_computation and unit_has_computation:
            ends.append(piece_start)  # the previous piece ends with its separator
        unit_has_computation = unit_has_computation or has_computation
    return ends
