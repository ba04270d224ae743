"""Tests for dca.segment: exact tiling of a completion into units."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dca.segment import segment

LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def check_invariants(text: str) -> list:
    """Assert every invariant of the module docstring and return the units."""
    units = segment(text)
    assert "".join(u.text for u in units) == text
    assert [u.index for u in units] == list(range(len(units)))
    position = 0
    for unit in units:
        assert unit.start == position
        assert unit.end > unit.start
        assert unit.text == text[unit.start : unit.end]
        position = unit.end
    assert position == len(text)
    if text.strip():
        # Only all-whitespace text gives a whitespace-only unit.
        assert all(u.text.strip() for u in units)
    for unit in units:
        # Newlines always split: no unit holds content on two lines.
        assert not any(c in LINE_BREAKS for c in unit.text.strip())
    for unit in units[1:]:
        # Inter-unit whitespace leads the following unit.
        assert not units[unit.index - 1].text[-1].isspace()
    return units


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("   ", ["   "]),
        ("One sentence.", ["One sentence."]),
        ("First. Second! Third? Fourth", ["First.", " Second!", " Third?", " Fourth"]),
        # Clause split between two computations, at ", and" and at "; ".
        (
            "She has 3 + 4 = 7 apples, and then 7 * 2 = 14 pears.",
            ["She has 3 + 4 = 7 apples,", " and then 7 * 2 = 14 pears."],
        ),
        ("So 3.5 + 1.5 = 5; 5 * 2 = 10.", ["So 3.5 + 1.5 = 5;", " 5 * 2 = 10."]),
        # Pieces without a computation stay with the computation before them.
        (
            "First, 3 + 4 = 7, which is odd, and 7 * 2 = 14.",
            ["First, 3 + 4 = 7, which is odd,", " and 7 * 2 = 14."],
        ),
        # One computation only: commas do not split.
        ("Ava, Ben and Cy have 3 + 4 = 7, so far.", ["Ava, Ben and Cy have 3 + 4 = 7, so far."]),
        # Comparisons are not computations.
        ("If 3 <= 4, and 4 >= 2, fine.", ["If 3 <= 4, and 4 >= 2, fine."]),
        # Decimals, prices, equations.
        ("It costs $1.50 each. Then 12 / 4 = 3.", ["It costs $1.50 each.", " Then 12 / 4 = 3."]),
        ("The rate is 3.5 per hour.", ["The rate is 3.5 per hour."]),
        ("The answer is 14. Next step.", ["The answer is 14.", " Next step."]),
        # Abbreviations.
        ("Use fruit, e.g. apples, i.e. red ones.", ["Use fruit, e.g. apples, i.e. red ones."]),
        ("Mr. Lee vs. Dr. Ray in the U.S. today.", ["Mr. Lee vs. Dr. Ray in the U.S. today."]),
        ("(e.g. this) works.", ["(e.g. this) works."]),
        # Ellipses.
        ("Wait... let me think. Hmm… ok.", ["Wait... let me think.", " Hmm… ok."]),
        # Closing quotes and brackets belong to the sentence they close.
        ('He said "stop." Then left.', ['He said "stop."', " Then left."]),
        ("(It is 5.) Then 6.", ["(It is 5.)", " Then 6."]),
        # List markers.
        ("1. Add them. 2. Double it.", ["1. Add them.", " 2. Double it."]),
        ("1. First\n2) Second\n- Third", ["1. First", "\n2) Second", "\n- Third"]),
        ("a. first item", ["a. first item"]),
        # Newlines always split; blank lines and indentation lead the next unit.
        ("Line one\nLine two", ["Line one", "\nLine two"]),
        ("A.\n\n  B.", ["A.", "\n\n  B."]),
        ("A\r\nB", ["A", "\r\nB"]),
        # Leading and trailing whitespace stay with the first and last unit.
        ("  Start. End.  \n", ["  Start.", " End.  \n"]),
        ("\n\nAnswer: 42", ["\n\nAnswer: 42"]),
        # Unicode.
        ("Café costs 3 €. 😀 Done!", ["Café costs 3 €.", " 😀 Done!"]),
        ("数量是5。再加3", ["数量是5。再加3"]),
    ],
)
def test_tricky_inputs(text: str, expected: list[str]) -> None:
    units = check_invariants(text)
    assert [u.text for u in units] == expected


@settings(max_examples=300)
@given(st.text())
def test_invariants_on_arbitrary_unicode(text: str) -> None:
    check_invariants(text)


# Text built from the pieces that drive the rules, so splits actually happen often.
_pieces = st.sampled_from(
    [
        "3 + 4 = 7", " apples", ", and ", "; ", ". ", "! ", "? ", "...", "…", " e.g. ",
        "Mr. ", "$1.50", "3.5", "\n", "\n\n", "1. ", "2) ", "- ", "  ", "\t", "x", "Then",
        "😀", "é", "数", '"', ")", "=", ",",
    ]
)  # fmt: skip


@settings(max_examples=500)
@given(st.lists(_pieces, max_size=30).map("".join))
def test_invariants_on_rule_heavy_text(text: str) -> None:
    check_invariants(text)


def test_every_line_with_content_starts_a_new_unit() -> None:
    text = "a = 1\nb = 2\n\nc = 3"
    assert [u.text for u in check_invariants(text)] == ["a = 1", "\nb = 2", "\n\nc = 3"]
