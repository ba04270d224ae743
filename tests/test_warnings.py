"""Warnings where a figure would mislead (issue 23, item 3): printed as ``dca: warning: ...``
and recorded beside the figures (a run's summary, eval.json, the agreement report)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dca.agreement import agreement_report
from dca.caveats import format_failure_warning, zero_variance_warning
from dca.cli import main
from dca.consensus import agreed_share, build_consensuses, consensus_warnings
from dca.files import write_jsonl
from dca.records import Review
from dca.review import build_reviewers, builtin_spec
from gold_traces import gold_traces, review_all


def _reviews(n: int, names: list[str]):
    golds = gold_traces(n, seed=5)
    return golds, review_all(golds, build_reviewers([builtin_spec(name) for name in names]))


def _oracle_and_a_failing_reviewer(n: int):
    """The oracle's reviews beside a second reviewer that failed every trace (as a reviewer that
    cannot read the problems does): each consensus is the oracle's alone."""
    golds, oracle = _reviews(n, ["oracle"])
    failed = [
        Review(trace_id=r.trace_id, reviewer="reference", units=r.units, status="failed", error="unsupported_problem: no reference",
               unreviewed_units=[u.index for u in r.units], metadata={"failure": "unsupported_problem"})
        for r in oracle
    ]  # fmt: skip
    return golds, oracle + failed


def test_consensus_of_one_usable_reviewer_is_flagged_and_left_out_of_the_agreed_share():
    _, reviews = _oracle_and_a_failing_reviewer(4)
    consensuses = build_consensuses(reviews)
    assert all(c.fraction_agreed == 1.0 for c in consensuses)  # what used to print as "100.0 % agreed"
    assert agreed_share(consensuses) is None
    (message,) = consensus_warnings(consensuses)
    assert message.startswith("4 of 4 traces had fewer than 2 usable reviews (0 with none; 4 failed reviews in all)")


def test_consensus_of_two_usable_reviewers_has_no_warning():
    golds = gold_traces(3, seed=5)
    a = review_all(golds, build_reviewers([builtin_spec("oracle")]))
    b = [r.__class__(**{**r.__dict__, "reviewer": "oracle-2"}) for r in a]
    consensuses = build_consensuses(a + b)
    assert consensus_warnings(consensuses) == [] and agreed_share(consensuses) == 1.0


def test_agreement_says_why_figures_are_not_available():
    _, reviews = _oracle_and_a_failing_reviewer(3)
    report = agreement_report(reviews)
    assert report["labels"]["alpha"] is None
    assert any(w.startswith("every review by reference failed (3)") for w in report["warnings"])
    assert any("1 reviewer(s) with usable reviews (oracle): agreement needs two or more" in w for w in report["warnings"])


def test_dca_consensus_and_agreement_print_the_warnings(tmp_path, capsys):
    _, reviews = _oracle_and_a_failing_reviewer(3)
    write_jsonl(tmp_path / "reviews.jsonl", reviews)
    assert main(["consensus", "--reviews", str(tmp_path / "reviews.jsonl"), "--out", str(tmp_path / "c.jsonl")]) == 0
    out, err = capsys.readouterr()
    assert "no trace had 2 usable reviews" in out and "100.0%" not in out
    assert "dca: warning: 3 of 3 traces had fewer than 2 usable reviews" in err
    assert main(["agreement", "--reviews", str(tmp_path / "reviews.jsonl"), "--out", str(tmp_path / "a.json")]) == 0
    err = capsys.readouterr().err
    assert "dca: warning: every review by reference failed" in err
    assert json.loads((tmp_path / "a.json").read_text())["warnings"]


def test_zero_variance_and_format_failure_warnings_as_tables():
    flat = [{"step": 1, "frac_reward_zero_std": 1.0}, {"step": 2, "frac_reward_zero_std": 1.0}]
    assert "in every step every group" in zero_variance_warning(flat, model="embedded", warmstarted=False)
    assert "dca warmstart --model embedded" in zero_variance_warning(flat, model="embedded", warmstarted=False)
    mixed = [{"step": 1, "frac_reward_zero_std": 0.5}, {"step": 2, "frac_reward_zero_std": 1.0}]
    assert "in 1 of 2 steps (first: step 2)" in zero_variance_warning(mixed, model="m", warmstarted=True)
    assert zero_variance_warning([{"step": 1, "frac_reward_zero_std": 0.0}], model="m", warmstarted=False) is None
    assert format_failure_warning({"format_failures": 0.5}, "x") is None
    assert format_failure_warning({"format_failures": 0.75}, "set a").startswith("set a: 75% of the answers are format failures")


def test_a_warm_started_policy_is_not_told_to_warm_start_first(tmp_path, tiny_model_dir):
    """The micro start and any checkpoint a warm start wrote are warm-started already; a plain
    checkpoint or hub model is not."""
    from dca.train.micro import SHIPPED_DIR
    from dca.train.run import warm_started

    assert warm_started("micro", None) and warm_started(str(SHIPPED_DIR), None)
    assert not warm_started(str(tiny_model_dir), None) and not warm_started("embedded", None)
    assert warm_started("embedded", object())  # the run's own warm start
    written = tmp_path / "ws"
    written.mkdir()
    (written / "warmstart.json").write_text("{}")
    assert warm_started(str(written), None)


def test_training_the_raw_tiny_model_warns_nothing_to_learn(tmp_path, tiny_model_dir, capsys):
    """A random model never answers: every group has zero reward variance, the eval is all
    format failures. Both are printed and kept in summary.json."""
    config = {
        "model": str(tiny_model_dir),
        "problems": {"synthetic": {"count": 4, "seed": 1}},
        "eval_problems": {"synthetic": {"count": 2, "seed": 2}},
        "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 8},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    warnings = summary["warnings"]
    assert any(w.startswith("nothing to learn: in every step every group") and "dca warmstart" in w for w in warnings), warnings
    assert any(w.startswith("eval before: 100% of the answers are format failures") for w in warnings), warnings
    for w in warnings:
        assert f"dca: warning: {w}" in err


def test_eval_warns_on_format_failures_and_draws_no_empty_early_answering_plot(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(tiny_model_dir), "--sets", "synthetic-easy:3", "--probes", "", "--reviewer", "none", "--max-new-tokens", "8", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["warnings"] and report["warnings"][0].startswith("set synthetic-easy: 100% of the answers are format failures")
    assert "dca: warning: set synthetic-easy" in capsys.readouterr().err
    assert (out / "accuracy.png").exists() and not (out / "early_answering.png").exists()
    assert Path(out / "eval.json").stat().st_size > 0
