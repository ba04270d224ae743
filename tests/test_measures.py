"""Tests for dca.measures: the one reader of numbers, arithmetic and phrases (issue 9 item 7,
issue 10 item 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dca.measures import (
    BACKTRACKING,
    VERIFICATION,
    equations,
    evaluate,
    has_computation,
    numbers,
    token_counter,
    tokens_per_insight,
    useful_steps,
    word_count,
    word_token_count,
)
from dca.records import Step


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,200 apples", [1200.0]),
        ("$5 and $1,234.50", [5.0, 1234.5]),
        ("He pays .5 each", [0.5]),
        ("It is 3.5. Then 7.", [3.5, 7.0]),  # a sentence-ending point is not a decimal
        ("-250 + 750", [250.0, 750.0]),
        ("10-4", [10.0, 4.0]),
        ("abc123 and x2", []),  # digits inside words are not numbers
        ("24,000,000 and 1,23", [24000000.0, 1.0]),
    ],
)
def test_numbers(text, expected):
    assert numbers(text) == expected


def test_signed_numbers_keep_a_sign_but_not_an_operator():
    assert numbers("-250 and 10-4, = -3", signed=True) == [-250.0, 10.0, 4.0, -3.0]


def read(text):
    return [(e.operands, e.result, e.correct) for e in equations(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # issue 10's misreadings, read as written
        ("He pays .5*10=5 dollars", [([0.5, 10.0], 5.0, True)]),
        ("-250+750=500", [([250.0, 750.0], 500.0, True)]),
        ("66 fish * 1/3 = 22", [([66.0, 1.0, 3.0], 22.0, True)]),
        ("20 * 5 - 4 = 100 - 4 = 96", [([20.0, 5.0, 4.0], 96.0, True)]),
        ("20 * 5 - 4 = 100 - 4 = 97", [([20.0, 5.0, 4.0], 97.0, False)]),
        ("20 * 5 - 4 = 90 - 4 = 86", [([20.0, 5.0, 4.0], 86.0, False)]),  # a wrong first link
        ("She sold 48/2 = <<48/2=24>>24 clips.", [([48.0, 2.0], 24.0, True)]),
        ("She sold 48/2 = <<48/2=24>>25 clips.", [([48.0, 2.0], 24.0, True), ([48.0, 2.0], 25.0, False)]),
        ("He made $<<12*5=60>>60.", [([12.0, 5.0], 60.0, True)]),
        # units, rates, rounding, other operators
        ("2 trains * 80 miles/train = 160 miles", [([2.0, 80.0], 160.0, True)]),
        ("$20/hour * 35 hours/week = $700/week", [([20.0, 35.0], 700.0, True)]),
        ("60g * 4/5 = 240g/5 = 48 grams", [([60.0, 4.0, 5.0], 48.0, True)]),
        ("10 / 3 = 3.33 and 10 / 3 = 3.3", [([10.0, 3.0], 3.33, True), ([10.0, 3.0], 3.3, True)]),
        ("10 / 3 = 3.5", [([10.0, 3.0], 3.5, False)]),
        ("5 x 3 = 15, 6 × 2 = 12 and 8 ÷ 2 = 4", [([5.0, 3.0], 15.0, True), ([6.0, 2.0], 12.0, True), ([8.0, 2.0], 4.0, True)]),
        ("20% * 50 = 10", [([20.0, 50.0], 10.0, True)]),
        ("(3 + 4) * 2 = 14", [([3.0, 4.0, 2.0], 14.0, True)]),
        ("x = 5 + 3 = 8.", [([5.0, 3.0], 8.0, True)]),
        ("1,200 / 4 = 300 dollars", [([1200.0, 4.0], 300.0, True)]),
        ("60/4 = 14 4-packs", [([60.0, 4.0], 14.0, False)]),  # two values, no operator: the chain ends
        # not computations
        ("Answer: 5", []),
        ("x = 5", []),
        ("The team played (L+16) + L = 2L + 16 = 22 games.", []),  # algebra over unknowns
        ("5 == 5 and a <= 3", []),
    ],
)
def test_equations(text, expected):
    assert read(text) == expected


@settings(max_examples=80, deadline=None)
@given(
    a=st.integers(0, 10_000), b=st.integers(1, 10_000), op=st.sampled_from("+-*/"),
    wrong=st.booleans(), unit=st.sampled_from(["", " apples", " miles/hour"]), money=st.booleans(),
)  # fmt: skip
def test_equations_agree_with_python(a, b, op, wrong, unit, money):
    value = eval(f"{a}{op}{b}")
    # A quotient that two decimals round to 0 (1 / 201 = 0.0) shows no digit of its value: a
    # checker may call it wrong, so it is not an example of a correct equation.
    assume(value == 0 or round(value, 2) != 0)
    shown = round(value, 2) + (1 if wrong else 0)
    sign = "$" if money else ""
    written = f"{'-' if shown < 0 else ''}{sign}{abs(shown):,}"
    text = f"So {sign}{a:,}{unit} {op} {sign}{b}{unit} = {written}{unit}."
    [equation] = equations(text)
    assert equation.correct == (not wrong)
    assert equation.operands == [float(a), float(b)]


def test_evaluate_refuses_what_is_not_arithmetic():
    assert evaluate("2 * (3 + 4)") == 14.0
    assert evaluate("1 / 0") is None
    assert evaluate("__import__('os')") is None
    assert evaluate("2 ** 3") is None


def test_phrases_and_computations():
    assert VERIFICATION.search("Let me double-check: 7 + 5 = 12.")
    assert VERIFICATION.search("To confirm, 3 * 4 = 12.")
    assert not VERIFICATION.search("She has 3 apples.")
    assert BACKTRACKING.search("Wait, that's wrong.")
    assert BACKTRACKING.search("Actually, let me redo this.")
    assert not BACKTRACKING.search("So 3 + 4 = 7.")
    assert has_computation("3 + 4 = 7") and has_computation("x = 7") and not has_computation("a <= 7")


def test_counts():
    assert word_count("So 3 + 4 = 7.") == 6
    assert word_token_count("So 3 + 4 = 7.") == 7
    steps = [Step(index=i, first_unit=i, last_unit=i, function="other", contribution=c)
             for i, c in enumerate(["essential", "irrelevant", "solved", "error"])]  # fmt: skip
    assert useful_steps(steps) == 2
    assert tokens_per_insight([(10, 2), (9, 3), (100, 0)]) == 4.0
    assert tokens_per_insight([(5, 0)]) is None


def test_no_module_keeps_its_own_number_or_phrase_pattern():
    """One home: the patterns live in dca.measures only (issue 9 item 7)."""
    source = Path(__file__).resolve().parents[1] / "src" / "dca"
    offenders = []
    for path in source.rglob("*.py"):
        if path.name == "measures.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (r"\\d\{1,3\}\(\?:,\\d\{3\}\)", r"double\[- \]check", r"on second thought"):
            if re.search(pattern, text):
                offenders.append(f"{path.name}: {pattern}")
    assert not offenders


def test_token_counter_counts_model_tokens_without_special_tokens(tiny_model_dir):
    from dca.model import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    count = token_counter(tokenizer)
    text = "Step 1: 3 + 4 = 7.\nAnswer: 7"
    assert count(text) == len(tokenizer(text, add_special_tokens=False)["input_ids"]) > 0
    assert count("") == 0


def test_tokens_are_counted_in_one_place():
    """One home: a text's model tokens are counted by `token_counter` only (issue 19 item 2)."""
    source = Path(__file__).resolve().parents[1] / "src" / "dca"
    offenders = [
        path.name
        for path in source.rglob("*.py")
        if path.name != "measures.py" and re.search(r"len\(tokenizer\([^()]*add_special_tokens=False\)", path.read_text(encoding="utf-8"))
    ]
    assert not offenders
