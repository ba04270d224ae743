import threading

import pytest

from dca.problems.answer import check_answer, extract_answer

# completion, gold, expected answer, form, outcome
CASES = [
    ("Ava has 7 apples.\nAnswer: 7", "7", "7", "strict", "correct"),
    ("Answer: 8", "7", "8", "strict", "wrong"),
    ("Answer: 1,200", "1200", "1200", "strict", "correct"),
    ("Answer: 1200", "1,200", "1200", "strict", "correct"),
    ("Answer: 3.5", "3.5", "3.5", "strict", "correct"),
    ("Answer: 3.50", "3.5", "3.5", "strict", "correct"),
    ("Answer: 1200.0", "1200", "1200", "strict", "correct"),
    ("Answer: $8", "8", "8", "strict", "correct"),
    ("Answer: -3", "-3", "-3", "strict", "correct"),
    ("Answer: -3", "3", "-3", "strict", "wrong"),
    ("Answer: 8 apples", "8", "8", "strict", "correct"),
    ("Answer: 12 - 5 = 7", "7", "7", "strict", "correct"),
    ("The answer is 8.", "8", "8", "lenient", "correct"),
    ("So 3 + 5 = 8. The answer is 8. I hope it is correct.", "8", "8", "lenient", "correct"),
    ("answer: 8", "8", "8", "lenient", "correct"),
    ("**Answer:** 8", "8", "8", "lenient", "correct"),
    ("So the total is \\boxed{8}.", "8", "8", "lenient", "correct"),
    ("#### 8", "8", "8", "lenient", "correct"),
    ("The final answer is 8", "8", "8", "lenient", "correct"),
    ("The answer is $1,200.", "1200", "1200", "lenient", "correct"),
    ("Answer: 7\nThe answer is 9", "7", "7", "strict", "correct"),  # strict wins
    ("The answer is 5. Wait, no. The answer is 6.", "6", "6", "lenient", "correct"),  # last wins
    ("Answer: eight\nThe answer is 8.", "8", "8", "lenient", "correct"),  # unparseable skipped
    ("Ava has 8 apples.", "8", None, None, "format_failure"),
    ("Answer: eight", "8", None, None, "format_failure"),
    ("Answer:", "8", None, None, "format_failure"),
    ("", "8", None, None, "format_failure"),
]


@pytest.mark.parametrize("completion, gold, answer, form, outcome", CASES)
def test_check_answer_table(completion, gold, answer, form, outcome):
    check = check_answer(completion, gold)
    assert (check.answer, check.form, check.outcome) == (answer, form, outcome)
    assert check.reward == (1.0 if outcome == "correct" else 0.0)
    assert (check.span is None) == (outcome == "format_failure")


@pytest.mark.parametrize(
    "completion, statement",
    [
        ("Ava has 7 apples.\nAnswer: 7\n", "Answer: 7"),
        ("So 3 + 5 = 8. The answer is 8. I hope it is correct.", "The answer is 8."),
        ("Total: \\boxed{3.5}.", "Total: \\boxed{3.5}."),
        ("Step one.\n#### 1,200", "#### 1,200"),
    ],
)
def test_span_covers_the_final_answer_statement(completion, statement):
    start, end = extract_answer(completion).span
    assert completion[start:end] == statement


@pytest.mark.parametrize(
    "weird",
    ["\\boxed{", "Answer: " + "(" * 500, "Answer: 1/0", "answer: \\frac{}{}", "Answer: 10^10^10^10", "\x00\ud800"],
)
def test_weird_text_never_raises(weird):
    assert check_answer(weird, "8").outcome in ("wrong", "format_failure")


@pytest.mark.parametrize(
    "completion, outcome",
    [("The answer is 8.", "correct"), ("Answer: 2^3", "correct"), ("Answer: 10^10^10^10", "wrong")],
)
def test_works_off_the_main_thread_where_timeouts_are_off(completion, outcome):
    results = []
    thread = threading.Thread(target=lambda: results.append(check_answer(completion, "8")), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert results and results[0].outcome == outcome
