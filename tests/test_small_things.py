"""Small frictions of a first hour (issue 23, item 6): --version, defaults in every --help,
tables that fit the terminal, the train header's completions per optimizer step, summary rows
of the chosen policy only, third-party notices silenced."""

from __future__ import annotations

import argparse
import logging
import threading

import pytest
import yaml

from dca import __version__
from dca.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser, name: str = "dca"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for key, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {key}")


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"dca {__version__}"


def test_every_help_shows_every_default():
    pages = 0
    for name, parser in _parsers(build_parser()):
        text = "".join(parser.format_help().split())  # argparse wraps lines at spaces and hyphens
        pages += 1
        for action in parser._actions:
            if not action.option_strings or action.default is None or action.default is False or action.default in (argparse.SUPPRESS, []):
                continue
            assert "".join(f"(default: {action.default})".split()) in text, f"{name} --help hides the default of {action.option_strings[0]}"
    assert pages >= 20


def test_domains_table_fits_the_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["domains"]) == 0
    table = capsys.readouterr().out.split("\n  ")[0]  # the table, before the one-line descriptions
    assert max(len(line) for line in table.splitlines()) <= 80


def test_math_verify_timeout_notice_is_silenced(caplog):
    import math_verify.grader
    import math_verify.parser

    from dca.cli import _silence_third_party
    from dca.problems.answer import check_answer

    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = False
    _silence_third_party()
    with caplog.at_level(logging.WARNING):
        worker = threading.Thread(target=check_answer, args=("So 1/2 + 1/2 = 1.\nAnswer: 1", "1"))  # no timeout off the main thread
        worker.start()
        worker.join()
    assert math_verify.parser.TIMEOUT_WARNING_SHOWN  # the notice was raised, and not shown
    assert "Timeout is disabled" not in caplog.text


def test_train_header_counts_completions_per_optimizer_step_and_rows_follow_the_policy(tmp_path, tiny_model_dir, capsys):
    config = {
        "model": str(tiny_model_dir),
        "credit": {"policy": "signed"},
        "problems": {"synthetic": {"count": 8, "seed": 1}},
        "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 8},
        "trl": {"gradient_accumulation_steps": 2},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "1 steps of 2 prompt(s) x 2 completions = 4 completions per optimizer step (gradient accumulation 2)" in out
    traces = (tmp_path / "run" / "traces.jsonl").read_text().splitlines()
    assert len(traces) == 4  # what the header said was sampled
    assert "conserve" not in out and "bytes written" in out
