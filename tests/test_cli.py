"""The `dca` command: help for every command, real runs on a tiny model, and bad input.

Real runs start a process (`conftest.dca`), as a user runs them, so exit codes and printed
lines are the real ones; help and refusals run in this process (`conftest.dca_in_process`), with
one process that checks the console command itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import dca, dca_commands, dca_in_process, one_line_error
from dca.records import Credit, Problem, Review, Trace
from dca.files import read_jsonl

#: Words the help of a command must show besides its usage line.
HELP_WORDS = {"review": ["--reviewers", "--cache"], "edit": ["--out"], "sft": ["--out"], "eval": ["--sets"], "persona-train": ["--labels"]}


@pytest.mark.parametrize("command", dca_commands())
def test_help(command):
    result = dca_in_process(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: dca " + command in result.stdout
    for word in HELP_WORDS.get(command, []):
        assert word in result.stdout


def test_the_console_command_lists_every_command():
    result = dca("--help")  # one real process: `python -m dca.cli` is wired up
    assert result.returncode == 0, result.stderr
    assert "usage: dca " in result.stdout
    for command in dca_commands():
        assert command.split()[0] in result.stdout


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
    assert dca_in_process("problems", "--synthetic", "3", "--out", str(problems)).returncode == 0
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

    # The same --out again is refused, naming --overwrite.
    one_line_error(dca_in_process("train", "--config", str(tiny_config(tmp_path, tiny_model_dir)), "--out", str(out)), "--overwrite")


def test_bad_input_gets_one_line_and_exit_code_2(tmp_path, tiny_model_dir):
    missing = tmp_path / "missing.jsonl"
    one_line_error(dca_in_process("rollout", "--problems", str(missing), "--out", str(tmp_path / "t.jsonl")), "does not exist")

    malformed = tmp_path / "bad.jsonl"
    malformed.write_text('{"id": "x", "question": "q"}\nnot json\n')
    one_line_error(dca_in_process("rollout", "--problems", str(malformed), "--out", str(tmp_path / "t.jsonl")), "bad.jsonl:1")

    problems = tmp_path / "p.jsonl"
    assert dca_in_process("problems", "--synthetic", "2", "--out", str(problems)).returncode == 0
    one_line_error(dca_in_process("rollout", "--problems", str(problems), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "t.jsonl")), "does not exist")

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(dca_in_process("problems", "--synthetic", "2", "--out", str(blocker / "p.jsonl")), "does not exist")
    one_line_error(dca_in_process("train", "--config", str(tiny_config(tmp_path, tiny_model_dir)), "--out", str(blocker / "run")))

    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("grpo: {steps: 0}\n")
    one_line_error(dca_in_process("train", "--config", str(bad_config), "--out", str(tmp_path / "r1")), "grpo.steps")
    bad_config.write_text("credit: {policy: everything}\n")
    one_line_error(dca_in_process("train", "--config", str(bad_config), "--out", str(tmp_path / "r2")), "credit.policy")
    bad_config.write_text("problems: {file: /nonexistent/problems.jsonl}\n")
    one_line_error(dca_in_process("train", "--config", str(bad_config), "--out", str(tmp_path / "r3")), "does not exist")
    bad_config.write_text("[unclosed\n")
    one_line_error(dca_in_process("train", "--config", str(bad_config), "--out", str(tmp_path / "r4")), "YAML")
    # Nothing that looks like a run was left behind by any of the failed commands.
    assert not any((tmp_path / name).exists() for name in ["r1", "r2", "r3", "r4"])

    one_line_error(dca_in_process("problems", "--synthetic", "2", "--max-value", "1", "--out", str(tmp_path / "x.jsonl")), "max_value")
    one_line_error(dca_in_process("demo", "--steps", "0", "--out", str(tmp_path / "d")))
    one_line_error(dca_in_process("rollout", "--problems", str(problems)))  # argparse: --out missing


def test_dca_in_process_reports_what_a_process_would(monkeypatch, tmp_path):
    """The in-process runner reports as Python reports a process: an uncaught exception is exit
    code 1 with its traceback on stderr, ``sys.exit(text)`` is 1 with the text; the call's
    working directory and variables are its own and undone after it."""
    import os
    import sys

    import dca.cli

    def crash(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(dca.cli, "main", crash)
    crashed = dca_in_process("domains")
    assert crashed.returncode == 1 and "Traceback" in crashed.stderr and "RuntimeError: boom" in crashed.stderr
    with pytest.raises(AssertionError):
        one_line_error(crashed)
    monkeypatch.setattr(dca.cli, "main", lambda argv: sys.exit("no way"))
    assert (dca_in_process("domains").returncode, dca_in_process("domains").stderr) == (1, "no way\n")

    def look(argv):
        print(argv, os.getcwd(), os.environ.get("DCA_PROBE"), "HOME" in os.environ)
        return 0

    monkeypatch.setattr(dca.cli, "main", look)
    here = os.getcwd()
    seen = dca_in_process("domains", tmp_path, cwd=tmp_path, env={"DCA_PROBE": "x", "HOME": None})
    assert (seen.returncode, seen.stdout) == (0, f"['domains', '{tmp_path}'] {tmp_path} x False\n")
    assert os.getcwd() == here and "DCA_PROBE" not in os.environ and "HOME" in os.environ
