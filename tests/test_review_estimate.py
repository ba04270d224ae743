"""`dca review --estimate` / `dca train --estimate` (issue 22): the estimate beside what a real
run on a local OpenAI-compatible server measured."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from review_servers import ReviewServer, make_traces

from dca.files import write_jsonl
from dca.review.config import ReviewerSpec
from dca.review.estimate import estimate_reviews, sum_estimates
from dca.cli.estimate import gold_items


def dca(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dca.cli", *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_estimate_matches_the_measured_tokens_of_a_real_review_run(tmp_path):
    # 10 problems, 4 completions each (a group): the prompts share their first part.
    traces = []
    for k, rate in enumerate((0.0, 0.3, 0.6, 0.9)):
        problems, group = make_traces(10, seed=5, irrelevant_rate=rate)
        traces += [dataclasses.replace(t, id=f"{t.id}-{k}") for t in group]
    write_jsonl(tmp_path / "problems.jsonl", problems)
    write_jsonl(tmp_path / "traces.jsonl", traces)
    with ReviewServer() as server:
        reviewers = {"reviewers": [
            {"name": "oracle", "backend": "oracle"},
            {"name": "llm", "backend": "openai", "model": "m", "base_url": server.url + "/v1", "price": {"input": 1.0, "output": 2.0}, "backoff_base": 0.01},
        ]}  # fmt: skip
        (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump(reviewers))
        common = ["review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", str(tmp_path / "reviewers.yaml")]
        estimated = dca(*common, "--estimate", "--estimate-sample", "10", "--summary-json", str(tmp_path / "estimate.json"))
        assert estimated.returncode == 0, estimated.stderr
        assert not server.requests  # an estimate calls nothing
        measured = dca(*common, "--out", str(tmp_path / "reviews.jsonl"), "--no-cache", "--summary-json", str(tmp_path / "summary.json"))
        assert measured.returncode == 0, measured.stderr
    estimate = json.loads((tmp_path / "estimate.json").read_text())["reviewers"]["llm"]
    outcome = json.loads((tmp_path / "summary.json").read_text())["reviewers"]["llm"]
    assert estimate["calls"] == outcome["new_calls"] == 40
    for field in ("input_tokens", "input_tokens_per_call"):
        assert abs(estimate[field] - outcome[field]) <= 0.2 * outcome[field], (field, estimate[field], outcome[field])
    total = lambda r: r["input_tokens"] + r["output_tokens"]  # noqa: E731
    assert abs(total(estimate) - total(outcome)) <= 0.2 * total(outcome)
    assert abs(estimate["cost_usd"] - outcome["cost_usd"]) <= 0.2 * outcome["cost_usd"]
    # The server reports the shared prefix of the 3 later completions of each problem as cached.
    assert 0 < outcome["cached_input_tokens"] < outcome["input_tokens"]
    print(f"estimate vs measured: input {estimate['input_tokens']} / {outcome['input_tokens']}, output "
          f"{estimate['output_tokens']} / {outcome['output_tokens']}, cached input {outcome['cached_input_tokens']}")


def test_undeclared_price_shows_tokens_only_and_an_unreachable_backend_an_unknown_price():
    problems, _ = make_traces(4, seed=1)
    sample = gold_items(problems, 4)
    priced = ReviewerSpec(name="a", backend="openai", model="m", base_url="http://127.0.0.1:9/v1", price={"input": 1, "output": 1})
    unpriced = ReviewerSpec(name="b", backend="hf", model="embedded")
    estimate = estimate_reviews(sample, [priced, unpriced], calls=100)
    a, b = estimate["reviewers"]["a"], estimate["reviewers"]["b"]
    assert a["input_tokens"] > 0 and a["cost_usd"] is None and "unreachable" in a["note"]
    assert b["input_tokens"] == a["input_tokens"] and b["cost_usd"] is None and "no price" in b["note"]
    assert estimate["total"]["cost_usd"] is None and estimate["total"]["calls"] == 200
    both = sum_estimates([estimate, estimate])
    assert both["reviewers"]["a"]["calls"] == 200 and both["total"]["input_tokens"] == 2 * estimate["total"]["input_tokens"]


def test_train_estimate_on_a_config_and_an_experiment_spec(tmp_path):
    (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": [
        {"name": "gpt", "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}]}))  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "reviewer": "gpt", "reviewers_file": str(tmp_path / "reviewers.yaml"), "grpo": {"steps": 3, "num_generations": 4}}))  # fmt: skip
    result = dca("train", "--config", str(tmp_path / "run.yaml"), "--estimate", "--estimate-sample", "4")
    assert result.returncode == 0, result.stderr
    assert "gpt" in result.stdout and "12" in result.stdout  # 3 steps x 1 prompt x 4 completions
    assert "unreachable" in result.stderr and "price unknown" in result.stderr
    spec = Path(__file__).parents[1] / "experiments" / "phase1-smoke.yaml"
    result = dca("train", "--spec", str(spec), "--estimate", "--estimate-sample", "2")
    assert result.returncode == 0, result.stderr
    assert "runs (arms x seeds)" in result.stdout
