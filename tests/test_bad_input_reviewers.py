"""Bad input around reviewers' cost and the real-mistake benchmark (issue 22): one line on
stderr and exit code 2, nothing written; a model without mistakes and an unreachable backend
are outcomes, said in one line, exit 0."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from review_servers import make_traces

from dca.files import write_jsonl


def dca(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dca.cli", *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture()
def traces(tmp_path):
    problems, traces = make_traces(3, seed=2)
    write_jsonl(tmp_path / "problems.jsonl", problems)
    write_jsonl(tmp_path / "traces.jsonl", traces)
    return tmp_path / "traces.jsonl"


def reviewers(tmp_path, **entry):
    path = tmp_path / "reviewers.yaml"
    path.write_text(yaml.safe_dump({"reviewers": [{"name": "gpt", "backend": "openai", "model": "m", **entry}]}))
    return path


@pytest.mark.parametrize("price, words", [({"input": -1, "output": 2}, "greater than or equal to 0"), ({"input": "cheap", "output": 2}, "valid number")])
def test_a_negative_or_non_numeric_price_is_one_line_and_exit_2(tmp_path, traces, price, words):
    summary = tmp_path / "estimate.json"
    result = dca("review", "--traces", str(traces), "--reviewers", str(reviewers(tmp_path, price=price)), "--estimate", "--summary-json", str(summary))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "price.input" in result.stderr and words in result.stderr
    assert not summary.exists()


def test_an_estimate_for_an_unreachable_backend_gives_tokens_and_an_unknown_price(tmp_path, traces):
    path = reviewers(tmp_path, base_url="http://127.0.0.1:9/v1", price={"input": 1, "output": 1})
    result = dca("review", "--traces", str(traces), "--reviewers", str(path), "--estimate")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "unreachable: tokens estimated, price unknown" in result.stderr
    assert "unknown" in result.stdout


def test_review_without_out_or_estimate_is_one_line(tmp_path, traces):
    result = dca("review", "--traces", str(traces), "--reviewers", str(reviewers(tmp_path)))
    assert result.returncode == 2 and "--out" in result.stderr and result.stderr.count("\n") == 1


def test_mistakes_bench_on_a_model_that_makes_no_mistakes_says_so_and_exits_0(tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = dca("bench-reviewers", "--mistakes", str(tiny_model_dir), "--limit", "2", "--max-new-tokens", "8", "--out", str(out),
                 env={"DCA_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "made no mistakes" in result.stdout
    report = json.loads(out.read_text())
    assert report["mistakes"]["wrong"] == 0 and report["predictions"] == [] and report["figures"] == {}
