import random
import re

import pytest

from dca.problems.gold import USEFUL_ROLES, render_gold_cot
from dca.problems.gsm8k import load_gsm8k
from dca.problems.synthetic import SyntheticConfig, generate_problems
from dca.records import CONTRIBUTIONS, FUNCTIONS, USEFUL_CONTRIBUTIONS, Unit
from dca.review import OracleReviewer
from dca.domains.oracles.arithmetic import _numbers
from dca.segment import segment

PROBLEMS = generate_problems(200, SyntheticConfig(seed=0))
REVIEWER = OracleReviewer()


def sentence_units(text: str) -> list[Unit]:
    """Units split after sentence ends and before line breaks; whitespace leads a unit."""
    cuts = [m.end() for m in re.finditer(r"[.!?](?=\s)", text)] + [m.start() for m in re.finditer(r"\n", text)]
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(text))), len(text)]
    return [Unit(index=i, start=a, end=b, text=text[a:b]) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def agreement_with_gold_roles(split) -> float:
    rng = random.Random(0)
    agree = total = 0
    for problem in PROBLEMS:
        cot = render_gold_cot(problem, irrelevant_rate=0.5, rng=rng)
        units = split(cot.text)
        review = REVIEWER.review(problem, cot.text, units, trace_id=problem.id)
        spans = cot.step_spans()
        for unit, contribution in zip(units, review.unit_contributions()):
            step = next(i for i, (a, b) in enumerate(spans) if a < unit.end and b > unit.start)
            useful = cot.steps[step].role in USEFUL_ROLES
            agree += useful == (contribution in USEFUL_CONTRIBUTIONS)
            total += 1
    return agree / total


@pytest.mark.parametrize("split", [sentence_units, segment], ids=["sentences", "dca.segment"])
def test_labels_agree_with_gold_roles(split):
    assert agreement_with_gold_roles(split) >= 0.95


def review(problem, text):
    units = segment(text)
    result = REVIEWER.review(problem, text, units, trace_id="t")
    return [(units[s.first_unit].text.strip(), s) for s in result.steps]


def labels(problem, text):
    return [(first, s.function, s.contribution) for first, s in review(problem, text)]


@pytest.mark.parametrize(
    "text, numbers",
    [
        ("She pays $5 for 1,200 beads.", [5.0, 1200.0]),
        ("That is 3.5 kg, or 12.", [3.5, 12.0]),
        ("Step 3: 7 - 2 = 5", [3.0, 7.0, 2.0, 5.0]),
    ],
)
def test_numbers_are_read_with_separators_decimals_and_currency(text, numbers):
    assert _numbers(text) == numbers


def test_equations_in_dollars_with_thousands_separators_are_checked():
    problem = next(p for p in PROBLEMS if [o.op for o in p.operations] == ["*"])
    (a, b), answer = (int(f.value) for f in problem.facts), int(problem.answer)
    assert labels(problem, f"So ${a:,} x {b} = ${answer:,}.")[0][1:] == ("computation", "solved")
    assert labels(problem, f"So {a} × {b} = {answer + 1}.")[0][1:] == ("computation", "error")


def test_steps_cover_all_units_with_valid_labels_and_link_dependencies():
    problem = PROBLEMS[2]
    cot = render_gold_cot(problem, rng=random.Random(0))
    units = segment(cot.text)
    result = REVIEWER.review(problem, cot.text, units, trace_id="t")
    assert result.status == "ok" and result.reviewer == "oracle" and not result.unreviewed_units
    assert [s.first_unit for s in result.steps][0] == 0 and result.steps[-1].last_unit == len(units) - 1
    for before, after in zip(result.steps, result.steps[1:]):
        assert after.first_unit == before.last_unit + 1
    assert all(s.function in FUNCTIONS and s.contribution in CONTRIBUTIONS for s in result.steps)
    assert all(d < s.index for s in result.steps for d in s.depends_on)
    solved = [s for s in result.steps if s.function == "computation" and s.contribution == "solved"]
    assert solved and solved[0].depends_on  # the final computation uses earlier steps
    assert result.steps[-1].function == "conclusion" and result.steps[-1].depends_on == [solved[0].index]


def test_planted_arithmetic_error_is_an_error_step():
    problem = PROBLEMS[0]
    cot = render_gold_cot(problem, rng=random.Random(0))
    first_value = int(problem.operations[0].value)
    broken = cot.text.replace(f"= {first_value} ", f"= {first_value + 1} ", 1)
    steps = review(problem, broken)
    assert any(s.function == "computation" and s.contribution == "error" for _, s in steps)


def test_distractor_computation_and_restatement_are_irrelevant():
    problem = next(p for p in PROBLEMS if len(p.distractors) == 2)
    d0, d1 = (int(d.value) for d in problem.distractors)
    text = f"{problem.distractors[0].text} Together that is {d0} + {d1} = {d0 + d1}.\nAnswer: {problem.answer}"
    assert labels(problem, text)[:2] == [
        (problem.distractors[0].text, "given_fact", "irrelevant"),
        (f"Together that is {d0} + {d1} = {d0 + d1}.", "computation", "irrelevant"),
    ]


def test_label_table_for_a_hand_written_trace():
    problem = next(p for p in PROBLEMS if [o.op for o in p.operations] == ["+"] and not p.distractors)
    (f0, f1), answer = (int(f.value) for f in problem.facts), int(problem.answer)
    text = (
        f"How many {problem.metadata['object']} does {problem.metadata['person']} have now? "
        f"First, {problem.metadata['person']} has {f0}. Hmm, let me think. "
        f"So {f0} + {f1} = {answer}. Let me double-check: {answer} - {f1} = {f0}. "
        f"The answer is {answer + 1}.\nAnswer: {answer}"
    )
    assert [(f, c) for _, f, c in labels(problem, text)] == [
        ("task_statement", "indirect"),
        ("given_fact", "indirect"),
        ("other", "irrelevant"),
        ("computation", "solved"),
        ("verification", "irrelevant"),
        ("conclusion", "error"),
        ("conclusion", "solved"),
    ]


def test_a_route_around_the_graph_credits_the_steps_it_uses():
    problem = next(p for p in PROBLEMS if [o.op for o in p.operations] == ["+", "+"])
    a, b, c = (int(f.value) for f in problem.facts)
    text = f"{b} + {c} = {b + c}. Then {a} + {b + c} = {a + b + c}.\nAnswer: {problem.answer}"
    assert [(f, c) for _, f, c in labels(problem, text)] == [
        ("computation", "essential"),
        ("computation", "solved"),
        ("conclusion", "solved"),
    ]


def test_problems_without_structure_give_a_failed_review():
    problem = load_gsm8k("test", limit=1)[0]
    result = REVIEWER.review(problem, "Answer: 3", segment("Answer: 3"), trace_id="t")
    assert result.status == "failed" and "synthetic" in result.error and not result.steps


def test_a_planted_first_error_and_the_steps_built_on_it():
    """Issue 10: the first wrong step is `error` (a wrong result, or a right computation on a
    wrong input), later computations on its value are not credited and depend on it."""
    from dca.review.bench import bench_review_items, first_error, planted_synthetic

    items = [i for i in planted_synthetic(PROBLEMS[:80], seed=1) if i.label >= 0]
    kinds = set()
    for item in items:
        (review_item,) = bench_review_items([item])
        result = REVIEWER.review(item.problem, review_item.trace.completion, review_item.units, trace_id=item.id)
        assert first_error(result) == item.label, (item.steps, item.planted)
        kinds.add(item.planted["kind"])
        labels = result.unit_contributions()
        for step in result.steps:
            if "wrong value" in step.reason:
                assert labels[step.first_unit] == "irrelevant" and step.depends_on
    assert kinds == {"result", "operand"}


def test_backtracking_after_an_error_marks_the_abandoned_work():
    problem = next(p for p in PROBLEMS if [o.op for o in p.operations] == ["+", "+"])
    f0, f1, f2 = (int(f.value) for f in problem.facts)
    v0, v1 = (int(o.value) for o in problem.operations)
    text = (
        f"First {f0} + {f1} = {v0 + 1}. Then {v0 + 1} + {f2} = {v0 + 1 + f2}. Wait, I made a mistake. "
        f"So {f0} + {f1} = {v0}. Then {v0} + {f2} = {v1}.\nAnswer: {v1}"
    )
    assert [(f, c) for _, f, c in labels(problem, text)] == [
        ("computation", "error"),
        ("computation", "failed_attempt"),
        ("backtracking", "indirect"),
        ("computation", "essential"),
        ("computation", "solved"),
        ("conclusion", "solved"),
    ]
