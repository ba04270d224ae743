"""The `dca` command: help for every subcommand, real runs on a tiny model, and bad input.

Commands run in a subprocess, as a user runs them, so exit codes and printed lines are the
real ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dca.records import Credit, Problem, Review, Trace
from dca.files import read_jsonl

SUBCOMMANDS = ["problems", "rollout", "warmstart", "train", "demo"]


def dca(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dca.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(command):
    result = dca(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: dca " + command in result.stdout


def test_problems_synthetic_and_gsm8k(tmp_path):
    out = tmp_path / "p.jsonl"
    result = dca("problems", "--synthetic", "7", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    problems = read_jsonl(out, Problem)
    assert len(problems) == 7 and all(p.operations and p.answer for p in problems)
    again = tmp_path / "again.jsonl"
    dca("problems", "--synthetic", "7", "--seed", "3", "--out", str(again))
    assert out.read_bytes() == again.read_bytes()

    gsm = tmp_path / "g.jsonl"
    result = dca("problems", "--gsm8k", "test", "--limit", "5", "--out", str(gsm))
    assert result.returncode == 0, result.stderr
    assert [p.source for p in read_jsonl(gsm, Problem)] == ["gsm8k"] * 5


def test_rollout_writes_consistent_traces(tmp_path, tiny_model_dir):
    problems = tmp_path / "p.jsonl"
    dca("problems", "--synthetic", "3", "--out", str(problems))
    out = tmp_path / "t.jsonl"
    result = dca("rollout", "--problems", str(problems), "--model", str(tiny_model_dir), "--samples", "2",
                 "--temperature", "1.0", "--max-new-tokens", "12", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    traces = read_jsonl(out, Trace)
    assert len(traces) == 6
    assert all(0 < len(t.completion_token_ids) <= 12 and t.prompt.startswith("<|im_start|>system") for t in traces)
    assert {t.outcome for t in traces} <= {"correct", "wrong", "format_failure"}


def tiny_config(tmp_path: Path, model: Path, **overrides) -> Path:
    config = {
        "model": str(model),
        "credit": {"policy": "conserve"},
        "problems": {"synthetic": {"count": 4, "seed": 1}},
        "grpo": {"steps": 2, "num_generations": 2, "max_completion_length": 12, "learning_rate": 1e-4},
        **overrides,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_writes_a_complete_run_directory(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    result = dca("train", "--config", str(tiny_config(tmp_path, tiny_model_dir)), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in ["config.yaml", "run.json", "problems.jsonl", "traces.jsonl", "reviews.jsonl", "credits.jsonl",
                 "metrics.jsonl", "summary.json", "checkpoint/config.json"]:  # fmt: skip
        assert (out / name).exists(), name
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert yaml.safe_load((out / "config.yaml").read_text())["grpo"]["steps"] == 2
    traces = read_jsonl(out / "traces.jsonl", Trace)
    reviews = read_jsonl(out / "reviews.jsonl", Review)
    credits = read_jsonl(out / "credits.jsonl", Credit)
    assert len(traces) == len(reviews) == len(credits) == 4  # 2 steps x 1 prompt x 2 completions
    for trace, credit in zip(traces, credits):
        assert credit.trace_id == trace.id
        assert len(credit.token_advantages) == len(trace.completion_token_ids)
        assert sum(credit.token_advantages) == pytest.approx(credit.uniform_sum, abs=1e-6)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all("dca/fraction_credited" in m for m in metrics)

    # The same --out again is refused; --overwrite replaces the finished run.
    again = dca("train", "--config", str(tiny_config(tmp_path, tiny_model_dir)), "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dca: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_bad_input_gets_one_line_and_exit_code_2(tmp_path, tiny_model_dir):
    missing = tmp_path / "missing.jsonl"
    one_line_error(dca("rollout", "--problems", str(missing), "--out", str(tmp_path / "t.jsonl")), "does not exist")

    malformed = tmp_path / "bad.jsonl"
    malformed.write_text('{"id": "x", "question": "q"}\nnot json\n')
    one_line_error(dca("rollout", "--problems", str(malformed), "--out", str(tmp_path / "t.jsonl")), "bad.jsonl:1")

    problems = tmp_path / "p.jsonl"
    dca("problems", "--synthetic", "2", "--out", str(problems))
    one_line_error(dca("rollout", "--problems", str(problems), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "t.jsonl")), "does not exist")

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(dca("problems", "--synthetic", "2", "--out", str(blocker / "p.jsonl")), "does not exist")
    one_line_error(dca("train", "--config", str(tiny_config(tmp_path, tiny_model_dir)), "--out", str(blocker / "run")))

    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("grpo: {steps: 0}\n")
    one_line_error(dca("train", "--config", str(bad_config), "--out", str(tmp_path / "r1")), "grpo.steps")
    bad_config.write_text("credit: {policy: everything}\n")
    one_line_error(dca("train", "--config", str(bad_config), "--out", str(tmp_path / "r2")), "credit.policy")
    bad_config.write_text("problems: {file: /nonexistent/problems.jsonl}\n")
    one_line_error(dca("train", "--config", str(bad_config), "--out", str(tmp_path / "r3")), "does not exist")
    bad_config.write_text("[unclosed\n")
    one_line_error(dca("train", "--config", str(bad_config), "--out", str(tmp_path / "r4")), "YAML")
    # Nothing that looks like a run was left behind by any of the failed commands.
    assert not any((tmp_path / name).exists() for name in ["r1", "r2", "r3", "r4"])

    one_line_error(dca("problems", "--synthetic", "2", "--max-value", "1", "--out", str(tmp_path / "x.jsonl")), "max_value")
    one_line_error(dca("demo", "--steps", "0", "--out", str(tmp_path / "d")))
    one_line_error(dca("rollout", "--problems", str(problems)))  # argparse: --out missing
