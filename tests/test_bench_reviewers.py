"""`dca bench-reviewers`: planted first errors, ProcessBench-format files and their metric, for
the programmatic reviewers and an LLM reviewer behind a local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import dca, dca_in_process, one_line_error
from dca.errors import UserError
from dca.problems import SyntheticConfig, generate_problems, load_gsm8k
from dca.records import Review, Step, Unit
from dca.review.bench import (
    bench_review_items,
    first_error,
    planted_gsm8k,
    planted_synthetic,
    read_processbench,
    run_bench,
    score,
    write_processbench,
)
from dca.review.config import ReviewerSpec
from review_servers import ReviewServer

SAMPLE = Path(__file__).parent / "data" / "processbench_sample.json"
GSM8K = load_gsm8k("test", limit=60)
SYNTHETIC = generate_problems(60, SyntheticConfig(min_operations=1, max_operations=4, seed=7))


@pytest.mark.parametrize("plant", ["gsm8k", "synthetic"])
def test_planted_items_differ_from_the_correct_solution_from_the_labelled_step_on(plant):
    items = planted_gsm8k(GSM8K, seed=3) if plant == "gsm8k" else planted_synthetic(SYNTHETIC, seed=3)
    assert len(items) >= 100 and len(items) % 2 == 0
    kinds = set()
    for correct, planted in zip(items[::2], items[1::2]):
        assert correct.problem is planted.problem and correct.label == -1
        k = planted.label
        assert 0 <= k < len(planted.steps) - 1 == len(correct.steps) - 1
        assert planted.steps[:k] == correct.steps[:k]  # everything before the first error is right
        assert planted.steps[k] != correct.steps[k]
        assert planted.planted["step"] == k and planted.planted["old"] != planted.planted["new"]
        kinds.add(planted.planted["kind"])
    assert kinds == {"result", "operand"}
    # Same seed, same items.
    again = planted_gsm8k(GSM8K, seed=3) if plant == "gsm8k" else planted_synthetic(SYNTHETIC, seed=3)
    assert [i.steps for i in again] == [i.steps for i in items]


def test_a_planted_change_propagates_to_the_final_answer():
    items = planted_gsm8k(GSM8K[:1], seed=0)  # Janet's ducks: 16 - 3 - 4 = 9, 9 * 2 = 18
    correct, planted = items
    assert correct.steps[-1] == "#### 18"
    assert planted.steps[-1] != "#### 18" and planted.steps[-1].startswith("#### ")


def test_reference_and_oracle_find_the_planted_first_errors():
    """Issue 10's goal: the reference reviewer's first-error F1 on planted GSM8K errors >= 0.8."""
    items = planted_gsm8k(GSM8K, seed=0) + planted_synthetic(SYNTHETIC, seed=0)
    specs = [ReviewerSpec(name="reference", backend="reference"), ReviewerSpec(name="oracle", backend="oracle")]
    figures, reviews = run_bench(items, specs)
    assert len(reviews) == 2 * len(items)
    reference, oracle = figures["reference"], figures["oracle"]
    assert reference["planted-gsm8k"]["f1"] >= 0.8
    assert reference["planted-gsm8k"]["accuracy_correct"] >= 0.9
    assert oracle["planted-synthetic"]["f1"] >= 0.9
    # The reference reviewer reads a synthetic problem's operation graph as its reference
    # solution (issue 22); the oracle fails, counted, on GSM8K, and "all" leaves that source out.
    assert reference["planted-synthetic"]["failed_reviews"] == 0 and reference["planted-synthetic"]["f1"] >= 0.9
    assert oracle["planted-gsm8k"]["failed_reviews"] == oracle["planted-gsm8k"]["items"]
    assert oracle["all"] == oracle["planted-synthetic"]


def review_with(labels: list[str], status: str = "ok", trace_id: str = "t", units: int = 4) -> Review:
    steps = [Step(index=i, first_unit=i, last_unit=i, function="other", contribution=c) for i, c in enumerate(labels)]
    unit_list = [Unit(index=i, start=i, end=i + 1, text="x") for i in range(units)]
    if status != "ok":
        return Review(trace_id=trace_id, reviewer="r", units=unit_list, status=status, error="timeout")
    return Review(trace_id=trace_id, reviewer="r", units=unit_list, steps=steps)


def test_first_error_and_the_processbench_metric():
    assert first_error(review_with(["essential", "failed_attempt", "error", "error"])) == 2
    assert first_error(review_with(["essential", "solved"])) == -1
    assert first_error(review_with([], status="failed")) is None
    items = read_processbench(SAMPLE)
    reviews = [
        review_with(["essential", "solved"], trace_id="sample-0"),  # -1: right
        review_with(["error", "error"], trace_id="sample-1"),  # 0: right
        review_with(["essential", "error"], trace_id="sample-2"),  # 1, not 2: wrong
        review_with([], status="failed", trace_id="sample-3"),  # failed: wrong
    ]
    f = score(items, reviews)["r"]["processbench_sample.json"]
    assert (f["erroneous"], f["correct"], f["failed_reviews"]) == (2, 2, 1)
    assert f["accuracy_erroneous"] == 0.5 and f["accuracy_correct"] == 0.5 and f["f1"] == 0.5


def test_processbench_files_are_read_and_written(tmp_path):
    items = read_processbench(SAMPLE)
    assert [i.label for i in items] == [-1, 0, 2, -1]
    review_items = bench_review_items(items)
    assert [u.text for u in review_items[2].units] == [s + "\n" for s in items[2].steps[:-1]] + [items[2].steps[-1]]
    assert review_items[0].trace.outcome == "unknown"  # no gold answer: the reviewer is told no outcome
    out = tmp_path / "items.jsonl"
    write_processbench(items, out)
    again = read_processbench(out)
    assert [(i.problem.question, i.steps, i.label) for i in again] == [(i.problem.question, i.steps, i.label) for i in items]
    for bad, message in [
        ('[{"problem": "p", "steps": ["a"], "label": 1}]', "'label' must be -1 or the index"),
        ('[{"problem": "p", "steps": [], "label": -1}]', "'steps' must be a non-empty list"),
        ('{"problem": 3}\n', "'problem' must be a non-empty string"),
        ("[1, 2", "neither a JSON list nor JSON lines"),
    ]:
        path = tmp_path / "bad.json"
        path.write_text(bad)
        with pytest.raises(UserError, match=message):
            read_processbench(path)


def test_an_llm_reviewer_through_a_local_server(tmp_path, monkeypatch):
    """The whole path of an LLM reviewer (protocol prompt, HTTP, parsing) on the bench. The
    scripted model behind the server never labels an error, so it is right on every correct
    item and wrong on every erroneous one; a share of persistent faults fails, counted."""
    items = read_processbench(SAMPLE) + planted_gsm8k(GSM8K[:5], seed=0)

    def plan(request, attempt):
        text = json.dumps(request["messages"])
        return "server_error" if "Ana buys" in text and "0.75" in text else "ok"

    monkeypatch.setenv("DCA_TEST_KEY", "sk-test-not-a-real-key")
    with ReviewServer(plan) as server:
        spec = ReviewerSpec(name="llm", backend="openai", model="test-model", base_url=server.url + "/v1",
                            api_key_env="DCA_TEST_KEY", timeout=2.0, max_attempts=2, backoff_base=0.01)  # fmt: skip
        figures, reviews = run_bench(items, [spec])
    assert len(reviews) == len(items)
    sample = figures["llm"]["processbench_sample.json"]
    assert sample["failed_reviews"] == 1  # sample-3, whose request always fails
    assert sample["accuracy_erroneous"] == 0.0 and sample["accuracy_correct"] == 0.5
    planted = figures["llm"]["planted-gsm8k"]
    assert planted["accuracy_correct"] == 1.0 and planted["accuracy_erroneous"] == 0.0 and planted["f1"] == 0.0


def test_the_command(tmp_path):
    out, items_out = tmp_path / "bench.json", tmp_path / "items.jsonl"
    result = dca("bench-reviewers", "--planted", "gsm8k", "--limit", "15", "--out", str(out), "--write-items", str(items_out))
    assert result.returncode == 0, result.stderr
    assert "reference" in result.stdout and "planted-gsm8k" in result.stdout and "F1" in result.stdout
    saved = json.loads(out.read_text())
    assert set(saved["figures"]) == {"reference", "oracle"}
    assert len(saved["predictions"]) == 2 * len(read_processbench(items_out))
    # ProcessBench files with an LLM reviewer declared in YAML (a key that is not set: one line, exit 2).
    reviewers = tmp_path / "reviewers.yaml"
    reviewers.write_text(yaml.safe_dump({"reviewers": [{"name": "gpt", "backend": "openai", "model": "m", "api_key_env": "DCA_BENCH_UNSET_KEY"}]}))
    one_line_error(dca_in_process("bench-reviewers", "--reviewers", reviewers, "--processbench", SAMPLE, env={"DCA_BENCH_UNSET_KEY": None}), "DCA_BENCH_UNSET_KEY")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--reviewer", "gpt"], "not built in"),
        (["--processbench", "missing.json"], "does not exist"),
        (["--limit", "0"], "at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words):
    one_line_error(dca_in_process("bench-reviewers", *args), words)
