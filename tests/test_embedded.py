"""Tests on the real embedded SmolLM2-135M-Instruct (marked slow; they run in CI too)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dca.credit import token_char_spans
from dca.model import embedded_checkpoint_dir, load_model
from dca.problems import SyntheticConfig, generate_problems
from dca.records import Credit, Review, Trace
from dca.files import read_jsonl
from dca.model import SamplingConfig
from dca.rollout import rollout
from dca.segment import segment

pytestmark = pytest.mark.slow


def test_embedded_model_generates_traces_that_align_with_their_tokens():
    model, tokenizer = load_model("embedded")
    assert (embedded_checkpoint_dir() / "model.safetensors").exists()  # cached for the next load
    problems = generate_problems(3, SyntheticConfig(min_operations=1, max_operations=1, distractors=(1, 1), seed=5))
    traces = rollout(model, tokenizer, problems, SamplingConfig(max_new_tokens=40, batch_size=3))
    assert len(traces) == 3
    for trace in traces:
        assert trace.completion.strip(), "the model wrote nothing"
        assert tokenizer.decode(trace.completion_token_ids, skip_special_tokens=True) == trace.completion
        spans = token_char_spans(tokenizer, trace.completion_token_ids, trace.completion)
        assert len(spans) == len(trace.completion_token_ids)
        assert "".join(u.text for u in segment(trace.completion)) == trace.completion


def test_demo_runs_grpo_beside_dca_end_to_end_on_the_embedded_model(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "dca.cli", "demo", "--world", "smollm2", "--steps", "1", "--warmstart-steps", "2", "--eval-problems", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((out / "demo.json").read_text())
    assert json.loads((out / "experiment.json").read_text())["status"] == "finished"
    assert figures["start"]["traces"] == 4
    for arm, policy in (("grpo", "uniform"), ("dca", "signed")):
        run = out / "runs" / arm / "seed-0"
        assert json.loads((run / "run.json").read_text())["status"] == "finished"
        assert figures["arms"][arm]["held_out"]["traces"] == 4 and figures["arms"][arm]["steps"] == 1
        traces = read_jsonl(run / "traces.jsonl", Trace)
        reviews = read_jsonl(run / "reviews.jsonl", Review)
        credits = read_jsonl(run / "credits.jsonl", Credit)
        assert len(traces) == len(reviews) == len(credits) == 8  # one prompt x 8 completions
        assert all(r.reviewer == "oracle" and r.status == "ok" for r in reviews)
        for credit in credits:
            assert credit.policy == policy
            assert sum(credit.token_advantages) == pytest.approx(credit.uniform_sum, abs=1e-5)  # both conserve the total
        assert not (run / "checkpoint").exists()  # dropped after its final evaluation: nothing later reads it
        assert Path(figures["viewer"][arm]).is_file()
    # the same seed and problem: both arms drew the same prompt
    assert {t.problem_id for t in read_jsonl(out / "runs" / "grpo" / "seed-0" / "traces.jsonl", Trace)} == {
        t.problem_id for t in read_jsonl(out / "runs" / "dca" / "seed-0" / "traces.jsonl", Trace)
    }
    assert "where the advantages landed" in result.stdout and "viewer-dca.html" in result.stdout
    assert "irrelevant share" in result.stdout
