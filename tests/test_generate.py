"""`dca generate`: the structure a model writes is executed, bad problems are rejected by
reason, near-duplicates of GSM8K and earlier sets are caught; tested offline and against a
local OpenAI-compatible server that returns valid, invalid and duplicate problems."""

from __future__ import annotations

import json
import re

import pytest

from conftest import dca, dca_in_process, one_line_error
from dca.generate import (
    ArithmeticSolution,
    DuplicateIndex,
    LogicSolution,
    Rejected,
    execute_arithmetic,
    execute_logic,
    parse_solution,
)
from dca.records import Problem
from dca.files import read_jsonl
from dca.review import OracleReviewer
from dca.segment import segment

VALID = {
    "question": "A bakery bakes 12 trays of 9 muffins each. It sells 47 muffins. A cafe nearby has 30 chairs. How many muffins are left?",
    "facts": [{"id": "f0", "text": "A bakery bakes 12 trays", "value": 12}, {"id": "f1", "text": "of 9 muffins each", "value": 9},
              {"id": "f2", "text": "It sells 47 muffins.", "value": 47}],
    "distractors": [{"id": "d0", "text": "A cafe nearby has 30 chairs.", "value": 30}],
    "operations": [{"id": "v0", "op": "*", "inputs": ["f0", "f1"], "value": 108, "description": "muffins baked"},
                   {"id": "v1", "op": "-", "inputs": ["v0", "f2"], "value": 61, "description": "muffins left"}],
    "answer": 61,
}  # fmt: skip


def _variant(**changes) -> dict:
    data = json.loads(json.dumps(VALID))
    for path, value in changes.items():
        target = data
        *keys, last = path.split(".")
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return data


def test_a_valid_structure_becomes_a_problem_the_oracle_reads():
    problem = execute_arithmetic(ArithmeticSolution.model_validate(VALID), "g0", "generated/test")
    assert problem.answer == "61" and [o.value for o in problem.operations] == [108, 61] and problem.distractors[0].value == 30
    text = "The bakery bakes 12 * 9 = 108 muffins. Then 108 - 47 = 61 are left.\nAnswer: 61"
    review = OracleReviewer().review(problem, text, segment(text), trace_id="t")
    assert review.status == "ok" and [s.contribution for s in review.steps][-1] == "solved"
    assert "essential" in [s.contribution for s in review.steps]


@pytest.mark.parametrize(
    "data, reason",
    [
        (_variant(**{"operations.1.value": 60}), "inconsistent"),  # 108 - 47 is not 60
        (_variant(answer=62), "inconsistent"),
        (_variant(**{"facts.2.value": 48}), "inconsistent"),  # 48 is not stated in the question
        (_variant(**{"operations.1.inputs": ["v0", "f7"]}), "unsolvable"),
        (_variant(**{"operations.1.op": "/", "operations.1.inputs": ["v0", "z0"]}), "unsolvable"),
        (_variant(**{"distractors.0.value": 12, "question": VALID["question"].replace("30 chairs", "12 chairs")}), "ambiguous"),
    ],
)
def test_bad_structures_are_rejected_by_reason(data, reason):
    with pytest.raises(Rejected) as caught:
        execute_arithmetic(ArithmeticSolution.model_validate(data), "g", "generated/test")
    assert caught.value.reason == reason


def test_division_by_zero_and_invalid_answers():
    data = _variant(**{"facts.2.value": 0, "question": VALID["question"].replace("47", "0"), "operations.1.op": "/"})
    with pytest.raises(Rejected, match="divides by zero"):
        execute_arithmetic(ArithmeticSolution.model_validate(data), "g", "s")
    for text in ("Sure! Here is a problem.", '{"question": "x"}', "```json\n{\"facts\": 3}\n```"):
        with pytest.raises(Rejected) as caught:
            parse_solution("arithmetic", text)
        assert caught.value.reason == "invalid_answer"
    assert parse_solution("arithmetic", "```json\n" + json.dumps(VALID) + "\n```").answer == 61


LOGIC = {
    "facts": [{"person": "Anne", "attribute": "big"}, {"person": "Bob", "attribute": "cold"}],
    "rules": [{"premise": "big", "attribute": "kind"}, {"premise": "kind", "attribute": "red", "negated": True},
              {"premise": "cold", "attribute": "round"}],
    "statement": {"person": "Anne", "attribute": "red"},
    "answer": "False",
}  # fmt: skip


def test_logic_structures_are_executed_and_their_proof_traced():
    problem = execute_logic(LogicSolution.model_validate(LOGIC), "l0", "generated/test")
    logic = problem.metadata["logic"]
    assert problem.answer == "False" and [n["attribute"] for n in logic["proof"]] == ["big", "kind", "red"]
    assert [r["distractor"] for r in logic["rules"]] == [False, False, True]
    text = "Anne is big, so Anne is kind. Kind people are not red, so Anne is not red.\nAnswer: False"
    assert [s.contribution for s in OracleReviewer().review(problem, text, segment(text), trace_id="t").steps] == ["essential", "solved", "solved"]
    with pytest.raises(Rejected, match="forward chaining"):
        execute_logic(LogicSolution.model_validate({**LOGIC, "answer": "True"}), "l1", "s")
    contradiction = {**LOGIC, "rules": LOGIC["rules"] + [{"premise": "big", "attribute": "red"}]}
    with pytest.raises(Rejected) as caught:
        execute_logic(LogicSolution.model_validate(contradiction), "l2", "s")
    assert caught.value.reason == "inconsistent"
    unknown = execute_logic(LogicSolution.model_validate({**LOGIC, "rules": [{"premise": "loud", "attribute": "red"}], "answer": "Unknown"}), "l3", "s")
    assert unknown.metadata["logic"]["blocked_rule"] == "R0"


def test_duplicate_index_finds_the_closest_question():
    index = DuplicateIndex()
    index.add("gsm8k-test", "g1", "Tom has 5 apples and buys 3 more. How many apples does Tom have?")
    index.add("gsm8k-test", "g2", "A train travels 60 miles per hour for 3 hours. How far does it go?")
    close = index.closest("Tom has 6 apples and buys 3 more. How many apples does Tom have?")
    assert close["id"] == "g1" and close["score"] >= 90
    assert index.closest("Write an email declining a party invitation.")["score"] < 60


# ---------------------------------------------------------------------------------------------
# Against a local OpenAI-compatible server

def _gsm8k_first_test_question() -> str:
    from dca.domains.sources import load

    return load("gsm8k", "test", 1)[0].question


OTHER_QUESTION = "Leo has 12 boxes with 9 cards in each. He gives 47 cards to his sister. His cousin owns 30 stamps. How many cards does Leo have now?"
AMBIGUOUS_QUESTION = "Nora plants 12 rows of 9 tulips. Deer eat 47 tulips. Her shed has 12 shelves. How many tulips survive?"


def _script(earlier_question: str):
    gsm8k = _gsm8k_first_test_question()

    def answer(request: dict):
        from llm_server import user_text

        text = user_text(request)
        i = int(re.search(r"Write (?:problem|puzzle) (\d+)", text).group(1))
        if "puzzle" in text:
            return json.dumps(LOGIC if i == 0 else {**LOGIC, "answer": "Unknown"})
        return {
            0: json.dumps(VALID),
            1: json.dumps(_variant(**{"operations.1.value": 60, "question": OTHER_QUESTION})),  # inconsistent: 108 - 47 is not 60
            2: "Sure! Here is a lovely problem about a zoo.",  # invalid answer
            3: json.dumps({**VALID, "question": gsm8k}),  # a GSM8K test question, copied
            4: json.dumps(VALID),  # the same as problem 0: a duplicate within the run
            5: json.dumps({**VALID, "question": earlier_question.replace("7", "8")}),  # like the earlier set's problem
            6: 400,  # the call fails for good
            7: json.dumps(_variant(**{"distractors.0.value": 12, "question": AMBIGUOUS_QUESTION})),  # 12 is stated twice
        }[i]

    return answer


def test_dca_generate_against_a_local_server(tmp_path):
    from llm_server import ScriptedServer, reviewers_yaml

    earlier = tmp_path / "earlier.jsonl"
    earlier_question = "Mia picks 17 pears and gives away 7. Her brother has 20 plums. How many pears does Mia keep?"
    from dca.files import write_jsonl

    write_jsonl(earlier, [Problem(id="old-0", source="generated/old", question=earlier_question, answer="10")])
    env = {"DCA_TEST_KEY": "sk-test-secret-123", "DCA_CACHE_DIR": str(tmp_path / "cache")}
    with ScriptedServer(_script(earlier_question)) as server:
        models = reviewers_yaml(tmp_path / "models.yaml", server.url, name="writer")
        out = tmp_path / "gen.jsonl"
        args = ["generate", "--reviewers", models, "--generator", "writer", "--count", "8", "--against", str(earlier), "--out", str(out)]
        result = dca(*args, env=env)
        assert result.returncode == 0, result.stderr
        problems = read_jsonl(out, Problem)
        assert [p.id for p in problems] == ["gen-arithmetic-s0-00000"] and problems[0].operations
        report = json.loads((tmp_path / "gen.jsonl.report.json").read_text())
        assert report["rejected_by_reason"] == {
            "invalid_answer": 1, "call_failed": 1, "unsolvable": 0, "inconsistent": 1, "ambiguous": 1, "near_duplicate": 3,
        }  # fmt: skip
        by_id = {item["id"]: item for item in report["problems"]}
        assert by_id["gen-arithmetic-s0-00003"]["closest"]["source"] == "gsm8k-test" and by_id["gen-arithmetic-s0-00003"]["closest"]["score"] == 100
        assert by_id["gen-arithmetic-s0-00004"]["closest"]["source"] == "generated (this run)"
        assert by_id["gen-arithmetic-s0-00005"]["closest"]["id"] == "old-0"
        assert by_id["gen-arithmetic-s0-00000"]["closest"]["score"] < 90  # the contamination report covers accepted ones too
        assert report["llm"]["answered_calls"] == 7 and report["llm"]["cost_usd"] > 0
        assert "accepted 1 of 8" in result.stdout
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert b"sk-test-secret-123" not in path.read_bytes(), path

        again = dca(*args[:-1], str(tmp_path / "again.jsonl"), env=env)  # same requests: served from the cache
        assert again.returncode == 0, again.stderr
        again_llm = json.loads((tmp_path / "again.jsonl.report.json").read_text())["llm"]
        # every answer that parsed comes from the cache; the invalid one was not cached and is asked again
        assert again_llm["cached_calls"] == 6 and again_llm["answered_calls"] == 1
        requests_before = len(server.requests)

        logic_out = tmp_path / "logic.jsonl"
        result = dca("generate", "--reviewers", models, "--generator", "writer", "--domain", "logic", "--count", "2",
                     "--no-gsm8k", "--out", str(logic_out), env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        (logic,) = read_jsonl(logic_out, Problem)
        assert logic.domain == "logic" and logic.answer == "False" and len(server.requests) == requests_before + 2
        assert json.loads((tmp_path / "logic.jsonl.report.json").read_text())["rejected_by_reason"]["inconsistent"] == 1

    one_line_error(dca_in_process("generate", "--reviewers", models, "--generator", "nobody", "--count", "2", "--out", tmp_path / "x.jsonl", env=env), "nobody")
