import dataclasses
import re

import pytest

from dca.problems.synthetic import SyntheticConfig, generate_problems
from dca.records import Problem, from_dict, to_dict

PROBLEMS = generate_problems(300, SyntheticConfig(seed=0))


def _evaluate(problem: Problem) -> dict[str, float]:
    values = {f.id: f.value for f in problem.facts}
    apply = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for operation in problem.operations:
        a, b = (values[i] for i in operation.inputs)  # inputs must already be defined
        values[operation.id] = apply[operation.op](a, b)
    return values


def test_same_seed_same_problems_and_different_seed_different():
    assert generate_problems(50, SyntheticConfig(seed=0)) == PROBLEMS[:50]
    other = generate_problems(50, SyntheticConfig(seed=1))
    assert [p.question for p in other] != [p.question for p in PROBLEMS[:50]]
    assert other[0].id == "synthetic-s1-00000"


def test_graph_evaluates_to_the_recorded_values_and_answer():
    for problem in PROBLEMS:
        values = _evaluate(problem)
        for operation in problem.operations:
            assert values[operation.id] == operation.value
            assert operation.value.is_integer() and operation.value >= 2
        assert problem.intermediate_values == [o.value for o in problem.operations]
        assert problem.answer == str(int(problem.operations[-1].value))


def test_every_fact_is_used_and_stated_in_the_question():
    for problem in PROBLEMS:
        used = {i for o in problem.operations for i in o.inputs}
        assert {f.id for f in problem.facts} <= used
        for fact in problem.facts + problem.distractors:
            assert fact.text in problem.question
            assert str(int(fact.value)) in re.findall(r"\d+", fact.text)
        assert problem.question.endswith("?")


def test_config_ranges_are_respected_and_all_operators_occur():
    config = SyntheticConfig(min_operations=2, max_operations=3, distractors=(1, 1), seed=3)
    problems = generate_problems(100, config)
    assert {len(p.operations) for p in problems} == {2, 3}
    assert all(len(p.distractors) == 1 for p in problems)
    assert all(p.metadata["difficulty"]["operations"] == len(p.operations) for p in problems)
    assert {o.op for p in PROBLEMS for o in p.operations} == {"+", "-", "*", "/"}


def test_stated_numbers_rarely_collide_with_each_other_or_intermediate_values():
    collisions = 0
    for problem in PROBLEMS:
        stated = [f.value for f in problem.facts + problem.distractors]
        collisions += len(set(stated)) < len(stated) or bool(set(stated) & set(problem.intermediate_values))
    assert collisions <= len(PROBLEMS) // 100


def test_one_operation_problems_are_short_and_small():
    easy = generate_problems(100, SyntheticConfig(max_operations=1, distractors=(0, 0)))
    for problem in easy:
        assert len(problem.facts) == 2 and len(problem.operations) == 1
        assert problem.question.count(".") == 2  # two fact sentences, then the question
        assert float(problem.answer) <= 250


def test_problems_round_trip_through_json_records():
    problem = PROBLEMS[7]
    assert from_dict(Problem, to_dict(problem)) == problem


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_operations": 0}, "min_operations"),
        ({"min_operations": 4, "max_operations": 2}, "max_operations"),
        ({"max_operations": 6}, "max_operations"),
        ({"distractors": (3, 1)}, "distractors"),
        ({"max_value": 5}, "max_value"),
    ],
)
def test_invalid_config_is_rejected_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)


def test_config_is_recorded_in_metadata():
    config = SyntheticConfig(seed=5)
    assert generate_problems(1, config)[0].metadata["config"] == dataclasses.asdict(config)
