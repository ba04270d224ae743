import random

import pytest

from dca.problems.answer import check_answer
from dca.problems.gold import ROLES, render_gold_cot
from dca.problems.gsm8k import load_gsm8k
from dca.problems.synthetic import SyntheticConfig, generate_problems

PROBLEMS = generate_problems(100, SyntheticConfig(seed=2))


def test_plain_gold_cot_is_correct_and_has_only_useful_steps():
    rng = random.Random(0)
    for problem in PROBLEMS:
        cot = render_gold_cot(problem, rng=rng)
        assert check_answer(cot.text, problem.answer).form == "strict"
        assert check_answer(cot.text, problem.answer).outcome == "correct"
        roles = [s.role for s in cot.steps]
        assert roles.count("computation") == len(problem.operations)
        assert roles.count("given_fact") == len(problem.facts)
        assert roles[-1] == "conclusion" and cot.text.endswith(f"\nAnswer: {problem.answer}")


def test_text_is_the_steps_joined_by_spaces_with_the_answer_on_its_own_line():
    rng = random.Random(1)
    for problem in PROBLEMS:
        cot = render_gold_cot(problem, irrelevant_rate=0.5, rng=rng)
        body, answer = cot.steps[:-1], cot.steps[-1]
        assert cot.text == " ".join(s.text for s in body) + "\n" + answer.text
        spans = cot.step_spans()
        assert [cot.text[a:b] for a, b in spans] == [s.text for s in cot.steps]
        assert all(s.role in ROLES for s in cot.steps)


def test_every_computation_states_a_true_equation_of_its_operation():
    problem = PROBLEMS[0]
    cot = render_gold_cot(problem, rng=random.Random(0))
    computations = [s.text for s in cot.steps if s.role == "computation"]
    for text, operation in zip(computations, problem.operations):
        assert f"= {int(operation.value)} " in text


def test_irrelevant_rate_controls_padding():
    rng = random.Random(3)
    counts = {}
    for rate in (0.0, 0.5, 1.0):
        steps = [s for p in PROBLEMS for s in render_gold_cot(p, irrelevant_rate=rate, rng=rng).steps]
        counts[rate] = sum(s.role.startswith(("irrelevant", "needless")) for s in steps)
    assert counts[0.0] == 0 < counts[0.5] < counts[1.0]
    kinds = {s.role for p in PROBLEMS for s in render_gold_cot(p, irrelevant_rate=1.0, rng=rng).steps}
    assert {"irrelevant_fact", "irrelevant_computation", "needless_check"} <= kinds


def test_rejects_problems_without_known_structure_and_bad_rates():
    with pytest.raises(ValueError, match="synthetic"):
        render_gold_cot(load_gsm8k("test", limit=1)[0], rng=random.Random(0))
    with pytest.raises(ValueError, match="irrelevant_rate"):
        render_gold_cot(PROBLEMS[0], irrelevant_rate=1.5, rng=random.Random(0))
