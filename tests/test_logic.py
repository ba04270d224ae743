"""The logic domain: generator, gold CoTs, the proof-based oracle against hand-labelled
traces, and a DCA training run with the oracle on logic problems (tiny model)."""

from __future__ import annotations

import collections
import random

import pytest

from dca.domains import check
from dca.problems.logic import LogicConfig, forward_chain, generate_logic_problems, render_logic_gold_cot
from dca.records import Problem
from dca.review import OracleReviewer
from dca.domains.oracles.logic import LogicOracleReviewer
from dca.segment import segment


def test_generator_is_seeded_and_prefix_stable():
    a = generate_logic_problems(12, LogicConfig(seed=4))
    assert [p.question for p in generate_logic_problems(12, LogicConfig(seed=4))] == [p.question for p in a]
    assert [p.question for p in generate_logic_problems(5, LogicConfig(seed=4))] == [p.question for p in a[:5]]
    assert [p.question for p in generate_logic_problems(12, LogicConfig(seed=5))] != [p.question for p in a]


def test_generated_answers_follow_from_the_theory():
    problems = generate_logic_problems(200, LogicConfig(seed=1))
    assert collections.Counter(p.answer for p in problems).keys() == {"True", "False", "Unknown"}
    assert {p.metadata["logic"]["depth"] for p in problems} == {1, 2, 3, 4, 5}
    for p in problems:
        logic = p.metadata["logic"]
        closure = forward_chain(logic["facts"], logic["rules"], logic["people"])  # recomputed, no contradiction
        q = logic["query"]
        value = closure[q["person"]].get(q["attribute"])
        expected = "Unknown" if value is None else ("True" if value == (not q["negated"]) else "False")
        assert expected == p.answer and p.question.endswith(q["text"])
        assert len(logic["proof"]) == logic["depth"] + (0 if p.answer == "Unknown" else 1)
        assert any(r["distractor"] for r in logic["rules"]) and any(f["distractor"] for f in logic["facts"])
        for node in logic["proof"][1:]:  # the proof DAG: each node follows from its premise by its rule
            rule = next(r for r in logic["rules"] if r["id"] == node["rule"])
            premise = next(n for n in logic["proof"] if n["id"] == node["premise"])
            assert rule["premise"] == premise["attribute"] and (rule["attribute"], rule["negated"]) == (node["attribute"], node["negated"])
        assert (logic["blocked_rule"] is not None) == (p.answer == "Unknown")


def test_generator_options_are_checked():
    with pytest.raises(ValueError, match="min_depth"):
        LogicConfig(min_depth=0)
    with pytest.raises(ValueError, match="answers"):
        LogicConfig(answers=("Maybe",))
    only_true = generate_logic_problems(20, LogicConfig(seed=0, answers=("True",), min_depth=3, max_depth=3))
    assert {p.answer for p in only_true} == {"True"} and {p.metadata["logic"]["depth"] for p in only_true} == {3}


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_gold_cots_are_correct_and_the_oracle_agrees_with_their_roles(rate):
    expected = {
        "given_fact": {"indirect"}, "computation": {"essential", "solved"}, "conclusion": {"solved", "essential"},
        "irrelevant_fact": {"irrelevant"}, "irrelevant_rule": {"irrelevant"}, "irrelevant_computation": {"irrelevant"},
    }  # fmt: skip
    irrelevant = 0
    for p in generate_logic_problems(60, LogicConfig(seed=9)):
        cot = render_logic_gold_cot(p, irrelevant_rate=rate, rng=random.Random(p.id))
        assert check(p, cot.text).outcome == "correct"
        units = segment(cot.text)
        labels = OracleReviewer().review(p, cot.text, units, trace_id="t").unit_contributions()
        for step, (start, end) in zip(cot.steps, cot.step_spans()):
            irrelevant += step.role.startswith("irrelevant")
            for unit in units:
                if unit.start < end and start < unit.end:
                    assert labels[unit.index] in expected[step.role], (p.id, step.text, labels[unit.index])
    assert (irrelevant == 0) == (rate == 0.0)


# ---------------------------------------------------------------------------------------------
# Hand-labelled traces


def _problem(answer: str, rules: list[tuple[str, str, bool, bool]], facts: list[tuple[str, str, bool]], query, proof, blocked=None) -> Problem:
    """A logic problem written by hand: rules (premise, attribute, negated, distractor),
    facts (person, attribute, distractor), query (person, attribute, negated)."""
    rule_records = [
        {"id": f"R{i}", "premise": p, "attribute": a, "negated": n, "text": "", "distractor": d} for i, (p, a, n, d) in enumerate(rules)
    ]
    fact_records = [
        {"id": f"F{i}", "person": who, "attribute": a, "negated": False, "text": f"{who} is {a}.", "distractor": d}
        for i, (who, a, d) in enumerate(facts)
    ]
    people = ["Anne", "Bob"]
    attributes = sorted({r[0] for r in rules} | {r[1] for r in rules} | {f[1] for f in facts})
    person, attribute, negated = query
    logic = {
        "people": people, "attributes": attributes, "facts": fact_records, "rules": rule_records,
        "query": {"person": person, "attribute": attribute, "negated": negated, "text": f"{person} is {'not ' if negated else ''}{attribute}."},
        "proof": proof, "blocked_rule": blocked, "closure": forward_chain(fact_records, rule_records, people), "depth": len(proof),
    }  # fmt: skip
    return Problem(id="hand", source="logic", question="(by hand)", answer=answer, domain="logic", metadata={"logic": logic})


# Anne is big; big -> kind; kind -> not red; cold -> round (distractor); kind -> young
# (distractor that applies to Anne); Bob is cold (distractor). "Anne is red." is False.
FALSE_PROBLEM = _problem(
    "False",
    rules=[("big", "kind", False, False), ("kind", "red", True, False), ("cold", "round", False, True), ("kind", "young", False, True)],
    facts=[("Anne", "big", False), ("Bob", "cold", True)],
    query=("Anne", "red", False),
    proof=[
        {"id": "P0", "person": "Anne", "attribute": "big", "negated": False, "fact": "F0"},
        {"id": "P1", "person": "Anne", "attribute": "kind", "negated": False, "rule": "R0", "premise": "P0"},
        {"id": "P2", "person": "Anne", "attribute": "red", "negated": True, "rule": "R1", "premise": "P1"},
    ],
)
# Anne is big; big -> kind; loud -> red is blocked (nothing makes Anne loud): "Anne is red." is Unknown.
UNKNOWN_PROBLEM = _problem(
    "Unknown",
    rules=[("big", "kind", False, False), ("loud", "red", False, False), ("cold", "round", False, True)],
    facts=[("Anne", "big", False), ("Bob", "cold", True)],
    query=("Anne", "red", False),
    proof=[
        {"id": "P0", "person": "Anne", "attribute": "big", "negated": False, "fact": "F0"},
        {"id": "P1", "person": "Anne", "attribute": "kind", "negated": False, "rule": "R0", "premise": "P0"},
    ],
    blocked="R1",
)

HAND_LABELLED = [
    (
        FALSE_PROBLEM,
        "We need to determine whether Anne is red.\nAnne is big. Because big people are kind, Anne is kind. "
        "Bob is cold, so Bob is round. Kind people are not red, so Anne is not red.\nAnswer: False",
        [("task_statement", "indirect"), ("given_fact", "indirect"), ("computation", "essential"),
         ("computation", "irrelevant"), ("computation", "solved"), ("conclusion", "solved")],
    ),
    (
        FALSE_PROBLEM,
        "Anne is big. So Anne is red. Anne is young.\nAnswer: True",
        [("given_fact", "indirect"), ("computation", "error"), ("computation", "irrelevant"), ("conclusion", "error")],
    ),
    (
        FALSE_PROBLEM,
        "It is unknown whether Anne is red.\nAnswer: Unknown",
        [("computation", "error"), ("conclusion", "error")],
    ),
    (
        FALSE_PROBLEM,
        "If someone is big then they are kind. If someone is cold then they are round. Anne is big, so she is kind. "
        "She is not red.\nAnswer: False",
        [("given_fact", "indirect"), ("given_fact", "irrelevant"), ("computation", "essential"), ("computation", "solved"),
         ("conclusion", "solved")],
    ),
    (
        UNKNOWN_PROBLEM,
        "Anne is big, so Anne is kind. Bob is cold. Nothing says that Anne is loud, so we cannot tell whether Anne is red.\n"
        "Answer: Unknown",
        [("computation", "essential"), ("given_fact", "irrelevant"), ("computation", "essential"), ("conclusion", "solved")],
    ),
    (
        UNKNOWN_PROBLEM,
        "Anne is big. Anne is loud, so Anne is red.\nAnswer: True",
        [("given_fact", "indirect"), ("computation", "error"), ("conclusion", "error")],
    ),
]


@pytest.mark.parametrize("problem, completion, expected", HAND_LABELLED)
def test_oracle_matches_hand_labels(problem, completion, expected):
    units = segment(completion)
    assert len(units) == len(expected), [u.text for u in units]
    review = OracleReviewer().review(problem, completion, units, trace_id="t")
    assert review.status == "ok" and review.reviewer == "oracle"
    got = []
    for unit in units:
        step = next(s for s in review.steps if s.first_unit <= unit.index <= s.last_unit)
        got.append((step.function, step.contribution))
    assert got == expected


def test_oracle_dependencies_follow_the_proof():
    problem, completion, _ = HAND_LABELLED[0]
    review = LogicOracleReviewer().review(problem, completion, segment(completion), trace_id="t")
    by_unit = {u: s for s in review.steps for u in range(s.first_unit, s.last_unit + 1)}
    assert by_unit[2].depends_on == [by_unit[1].index]  # Anne is kind <- Anne is big
    assert by_unit[4].depends_on == [by_unit[2].index]  # Anne is not red <- Anne is kind
    assert by_unit[5].depends_on == [by_unit[4].index]  # the answer <- the deciding literal
    assert by_unit[3].depends_on == []  # the distractor inference uses nothing on the proof

    problem, completion, _ = HAND_LABELLED[4]
    review = LogicOracleReviewer().review(problem, completion, segment(completion), trace_id="t")
    by_unit = {u: s for s in review.steps for u in range(s.first_unit, s.last_unit + 1)}
    assert by_unit[3].depends_on == [by_unit[2].index]  # Unknown <- "cannot tell"


def test_oracle_on_a_problem_without_a_proof_fails_cleanly():
    problem = Problem(id="x", source="logic", question="?", answer="True", domain="logic")
    review = OracleReviewer().review(problem, "Answer: True", segment("Answer: True"), trace_id="t")
    assert review.status == "failed" and "no recorded proof" in review.error


# ---------------------------------------------------------------------------------------------
# Training on the logic domain with the oracle


def test_dca_training_on_logic_with_the_oracle(tmp_path, tiny_model_dir):
    from dca.records import Review, Trace
    from dca.files import read_jsonl
    from dca.train.config import TrainConfig
    from dca.train.run import run_training
    from dca.train.warmstart import gold_dataset_rows

    config = TrainConfig.model_validate({
        "model": str(tiny_model_dir),
        "reviewer": "oracle",
        "credit": {"policy": "conserve"},
        "problems": {"domain": {"name": "logic", "count": 4, "seed": 1, "options": {"max_depth": 2}}},
        "grpo": {"steps": 2, "num_generations": 2, "max_completion_length": 16, "learning_rate": 1e-4},
    })  # fmt: skip
    summary, run = run_training(config, tmp_path / "run", log=lambda _: None)
    traces = read_jsonl(run.file("traces.jsonl"), Trace)
    reviews = read_jsonl(run.file("reviews.jsonl"), Review)
    assert len(traces) == 4 and len(reviews) == 4
    assert all(r.status == "ok" and r.reviewer == "oracle" and r.steps for r in reviews), [r.error for r in reviews]
    assert all("'Answer: True', 'Answer: False' or 'Answer: Unknown'" in t.prompt for t in traces)
    assert summary["train"]["reviews_failed"] == 0

    rows = gold_dataset_rows(TrainConfig.model_validate({"warmstart": {"problems": {"name": "logic", "count": 3}}}).warmstart)
    assert len(rows) == 3 and rows[0]["completion"][0]["content"].splitlines()[-1].startswith("Answer: ")
