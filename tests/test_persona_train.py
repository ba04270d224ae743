"""`dca persona-train`: rows, targets, the trained checkpoint and its before/after figures."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import dca_in_process, one_line_error
from dca.cli import main
from dca.model import load_model
from dca.records import Problem, Review, Trace
from dca.files import read_jsonl, write_jsonl
from dca.review.persona import load_personas, resolve_personas
from dca.segment import segment
from dca.train.persona import is_held_out, persona_answer, persona_rows, targets_from_labels
from gold_traces import gold_traces, review_all, three_reviewers


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    golds = gold_traces(10, seed=4)
    reviews = review_all(golds, three_reviewers(golds, 0.2))
    root = tmp_path_factory.mktemp("labels")
    write_jsonl(root / "problems.jsonl", [g.problem for g in golds])
    write_jsonl(root / "traces.jsonl", [g.trace for g in golds])
    write_jsonl(root / "reviews.jsonl", reviews)
    return root


def test_targets_and_rows_follow_the_labels(labelled, tiny_model_dir):
    reviews = read_jsonl(labelled / "reviews.jsonl", Review)
    traces = read_jsonl(labelled / "traces.jsonl", Trace)
    problems = read_jsonl(labelled / "problems.jsonl", Problem)
    consensus = targets_from_labels(reviews, traces, problems)
    oracle = targets_from_labels(reviews, traces, problems, "oracle")
    assert len(consensus) == len(oracle) == 10 and {t.review.reviewer for t in oracle} == {"oracle"}
    with pytest.raises(ValueError, match="no reviews by 'nobody'"):
        targets_from_labels(reviews, traces, problems, "nobody")

    from dca.review.protocol import CONTRIBUTION_CODES, parse_answer

    answer = persona_answer(oracle[0].review)
    lines = answer.splitlines()
    assert answer.endswith("\n") and len(lines) == len(oracle[0].review.units)  # one line per unit, no unit numbers
    labels = oracle[0].review.unit_contributions()
    assert [CONTRIBUTION_CODES[line.split()[0][1]] for line in lines] == labels
    assert [s.contribution for s in parse_answer(answer, oracle[0].review.units).steps] == labels

    _, tokenizer = load_model(str(tiny_model_dir))
    personas = resolve_personas(["strict", "causal"])
    rows = persona_rows(oracle, personas, tokenizer)
    assert len(rows) == 20 and rows[0]["prompt"].endswith("<|review:strict|>\n") and rows[10]["prompt"].endswith("<|review:causal|>\n")
    assert "Outcome" not in rows[0]["prompt"] and rows[0]["completion"] == persona_answer(oracle[0].review)
    assert sum(is_held_out(f"t{i}", 0.25) for i in range(1000)) in range(200, 300)


@pytest.mark.minutes("the whole command: the policy's replay solutions, agreement reviewed before and after, a 2-step SFT between (89 CPU-s measured)")
def test_persona_train_saves_a_trained_checkpoint_with_figures(labelled, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "personas"
    code = main([
        "persona-train", "--labels", str(labelled / "reviews.jsonl"), "--traces", str(labelled / "traces.jsonl"),
        "--problems", str(labelled / "problems.jsonl"), "--personas", "strict", "--target", "strict=oracle",
        "--model", str(tiny_model_dir), "--out", str(out), "--max-steps", "2", "--batch-size", "2",
        "--held-out", "0.3", "--max-measure", "1", "--replay", "1",
    ])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "persona_train.json").read_text())
    assert summary["targets"] == {"strict": "oracle"} and summary["rows"] == summary["train_traces"]["strict"]
    assert len(summary["losses"]) == 2 and all(loss["loss"] > 0 for loss in summary["losses"])
    for phase in ("before", "after"):
        figures = summary[phase]["strict"]
        assert figures["traces"] == 1 and figures["failed"] == 0 and figures["output_tokens_per_review"] > 0
        assert set(figures) >= {"alpha", "useful_f1", "error_f1", "first_error_f1", "seconds_per_review"}
    assert "oracle" in summary["external"]
    # the policy's own greedy solutions, one per persona row, and the policy checked before/after
    assert summary["policy_rows"] == summary["rows"] and summary["persona_settings"]["replay"] == 1.0  # asked for with --replay 1
    for phase in ("before", "after"):
        assert summary["policy"][phase]["problems"] >= 1 and 0 <= summary["policy"][phase]["accuracy"] <= 1
    assert [p.name for p in load_personas(out)] == ["strict"]
    trained, tokenizer = load_model(str(out))
    base, _ = load_model(str(tiny_model_dir))
    token = tokenizer.convert_tokens_to_ids("<|review:strict|>")
    assert token == len(tokenizer) - 1
    assert not torch.equal(trained.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)  # it trained
    assert "persona checkpoint:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--personas", "nobody"], "unknown persona"),
        (["--target", "causal=oracle"], "--target"),
        (["--held-out", "1.5"], "held_out"),
        (["--replay", "-1"], "replay must be between 0 and 10"),
    ],
)
def test_persona_train_mistakes_are_one_line_errors(labelled, tiny_model_dir, tmp_path, extra, message):
    args = ["persona-train", "--labels", str(labelled / "reviews.jsonl"), "--traces", str(labelled / "traces.jsonl"),
            "--problems", str(labelled / "problems.jsonl"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")]  # fmt: skip
    one_line_error(dca_in_process(*args, *extra), message)


def test_segment_is_what_targets_hold(labelled):
    reviews = read_jsonl(labelled / "reviews.jsonl", Review)
    traces = {t.id: t for t in read_jsonl(labelled / "traces.jsonl", Trace)}
    assert all(r.units == segment(traces[r.trace_id].completion) for r in reviews)


def test_policy_rows_are_the_models_own_solutions_without_a_persona_token(labelled, tiny_model_dir):
    from dca.review.persona import add_persona_tokens, resolve_personas
    from dca.rollout import render_prompt
    from dca.train.persona import policy_rows

    problems = read_jsonl(labelled / "problems.jsonl", Problem)[:3]
    model, tokenizer = load_model(str(tiny_model_dir))
    add_persona_tokens(model, tokenizer, resolve_personas(["strict"]))
    rows = policy_rows(model, tokenizer, problems, 5, 8)
    assert len(rows) == 5 and [r["prompt"] for r in rows[:3]] == [render_prompt(tokenizer, p) for p in problems]
    assert rows[3] == rows[0] and all("<|review:" not in r["prompt"] + r["completion"] for r in rows)
    again = policy_rows(model, tokenizer, problems, 3, 8)
    assert [r["completion"] for r in again] == [r["completion"] for r in rows[:3]]  # greedy: the model's own answer
    assert policy_rows(model, tokenizer, problems, 0, 8) == []
