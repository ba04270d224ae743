"""`dca eval`: its figures on hand-computed inputs, set parsing, and the command on a tiny model
(same command twice, same numbers; bad input; plots)."""

from __future__ import annotations

import json

import pytest

from conftest import dca_in_process, one_line_error
from dca.cli import main
from dca.errors import UserError
from dca.evaluate import (
    caught_own_mistakes,
    load_set,
    parse_set_spec,
    pass_at_k,
    problems_hash,
    set_figures,
    wilson_interval,
)
from dca.records import Problem, Review, Step, Trace
from dca.segment import segment


def test_wilson_interval_hand_computed():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 4)
    assert low == 0.0 and high == pytest.approx(0.4899, abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_pass_at_k():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 3, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_parse_set_spec(tmp_path):
    assert parse_set_spec("synthetic-easy").limit is None
    spec = parse_set_spec("gsm8k-test:50")
    assert (spec.name, spec.source, spec.limit) == ("gsm8k-test", "gsm8k-test", 50)
    for bad in ("nonsense", "missing.jsonl", "synthetic-easy:0"):
        with pytest.raises(UserError):
            parse_set_spec(bad)
    problems = load_set(parse_set_spec("synthetic-medium:5"))
    assert len(problems) == 5 and all(2 <= len(p.operations) <= 3 for p in problems)
    assert problems_hash(problems) == problems_hash(load_set(parse_set_spec("synthetic-medium:5")))
    assert problems_hash(problems) != problems_hash(problems[:4])


def _trace(i: int, problem: str, outcome: str, completion: str) -> Trace:
    return Trace(id=f"t{i}", problem_id=problem, prompt="", completion=completion, outcome=outcome)


def test_set_figures_tokens_per_insight_and_indicators():
    text = "So 2 + 2 = 5. Wait, let me check: 2 + 2 = 4.\nAnswer: 4"
    units = segment(text)
    assert len(units) == 3
    review = Review(
        trace_id="t0", reviewer="oracle", units=units,
        steps=[
            Step(index=0, first_unit=0, last_unit=0, function="computation", contribution="error"),
            Step(index=1, first_unit=1, last_unit=1, function="computation", contribution="solved"),
            Step(index=2, first_unit=2, last_unit=2, function="conclusion", contribution="solved"),
        ],
    )  # fmt: skip
    assert caught_own_mistakes(review) == 1
    traces = [_trace(0, "a", "correct", text), _trace(1, "a", "wrong", "x"), _trace(2, "b", "wrong", "y"), _trace(3, "b", "wrong", "z")]
    figures = set_figures(traces, [review], samples=2, count_tokens=lambda t: len(t.split()))
    assert figures["accuracy"] == 0.25 and figures["accuracy_ci95"] == list(wilson_interval(1, 4))
    assert figures["pass@1"] == pytest.approx(0.25) and figures["pass@2"] == pytest.approx(0.5)
    # 17 whitespace-separated tokens / 2 useful steps (the error step is not an insight)
    assert figures["tokens_per_insight"] == pytest.approx(8.5) and figures["tokens_per_insight_solved"] == pytest.approx(8.5)
    assert figures["performative"]["verification_phrases_per_trace"] == pytest.approx(0.25)
    assert figures["performative"]["backtracking_phrases_per_trace"] == pytest.approx(0.25)
    assert figures["performative"]["fraction_units_irrelevant"] == 0.0 and figures["irrelevant_share"] == 0.0
    assert figures["lenient_answers"] is None  # no problems given


def test_irrelevant_share_weighs_units_by_their_tokens():
    """The experiment's irrelevant share (tokens), beside the unit share of `dca eval`'s table."""
    text = "I like apples. So 3 + 4 = 7.\nAnswer: 7"
    units = segment(text)
    review = Review(
        trace_id="t0", reviewer="oracle", units=units,
        steps=[
            Step(index=0, first_unit=0, last_unit=0, function="other", contribution="irrelevant"),
            Step(index=1, first_unit=1, last_unit=1, function="computation", contribution="solved"),
        ],
    )  # fmt: skip
    failed = Review(trace_id="t1", reviewer="oracle", units=segment("x"), status="failed", error="reviewer_error: boom")
    traces = [_trace(0, "a", "correct", text), _trace(1, "b", "wrong", "x")]
    figures = set_figures(traces, [review, failed], samples=1, count_tokens=lambda t: len(t.split()))
    # "I like apples." (3 words) of 3 + 6 labelled words; the unlabelled answer unit counts in neither
    assert figures["irrelevant_share"] == pytest.approx(3 / 9)
    assert figures["performative"]["fraction_units_irrelevant"] == pytest.approx(1 / 2)
    assert figures["reviews_failed"] == 1 and figures["reviews_ok"] == 1


def test_lenient_answer_forms_are_counted_apart():
    problem = Problem(id="p", source="test", question="?", answer="18")
    texts = ["So 9 * 2 = 18.\nAnswer: 18", "So 9 * 2 = 18.\n#### 18", "So 9 * 2 = 18.\nA: 18", "So 9 * 2 = 18.\nA: -18"]
    traces = [_trace(i, "p", "correct", t) for i, t in enumerate(texts)]
    figures = set_figures(traces, [], samples=1, count_tokens=lambda t: len(t.split()), problems={"p": problem})
    assert figures["lenient_answers"] == 0.75


def test_one_evaluation_path_for_eval_the_experiment_and_training(tiny_model_dir):
    """`evaluate_problems` is what `dca eval` runs per set, what the experiment's curve reports
    (`CURVE_FIGURES`) and what training's evaluation samples; a failed rollout is recorded."""
    from dca.evaluate import evaluate_problems
    from dca.experiment.runner import CURVE_FIGURES, _Evaluator
    from dca.model import load_model
    from dca.review import reviewer_for
    from dca.model import SamplingConfig
    from dca.rollout import summarize
    from dca.train.run import evaluate

    problems = load_set(parse_set_spec("synthetic-easy:3"))
    model, tokenizer = load_model(str(tiny_model_dir))
    sampling = SamplingConfig(max_new_tokens=24, batch_size=16)
    result = evaluate_problems("easy", problems, model, tokenizer, sampling, reviewer=reviewer_for("auto", problems))
    assert len(result.traces) == 3 and [r.reviewer for r in result.reviews] == ["oracle"] * 3
    assert result.figures["reviewer"] == "oracle" and result.figures["reviews_ok"] + result.figures["reviews_failed"] == 3
    (row,) = _Evaluator({"easy": problems}, max_new_tokens=24).curve_rows(model, tokenizer, 5, 3)
    assert {k: row[k] for k in CURVE_FIGURES} == {k: result.figures[k] for k in CURVE_FIGURES} and row["step"] == 5
    assert evaluate(model, tokenizer, problems, max_new_tokens=24) == summarize(result.traces)
    broken = evaluate_problems("easy", problems, model, None, sampling)  # no tokenizer: the rollout fails
    assert broken.traces == [] and broken.figures["accuracy"] is None
    assert [(f["set"], f["stage"]) for f in broken.failures] == [("easy", "rollout")]


def test_eval_bad_input(tmp_path):  # (its --help: test_cli.test_help)
    for args in (["--sets", "nonsense"], ["--probes", "early,psychic"], ["--sets", "synthetic-easy:0"],
                 ["--sets", "synthetic-easy:1", "--probe-sets", "gsm8k-test"]):  # fmt: skip
        one_line_error(dca_in_process("eval", "--model", "embedded", *args, "--out", tmp_path / "o"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    one_line_error(dca_in_process("eval", "--sets", "synthetic-easy:1", "--out", tmp_path / "busy"), "not empty")


def test_eval_on_a_tiny_model_is_reproducible(tmp_path, tiny_model_dir, capsys):
    args = ["eval", "--model", str(tiny_model_dir), "--sets", "synthetic-easy:2,gsm8k-test:1", "--max-new-tokens", "8",
            "--temperature", "1.0", "--samples", "2", "--seed", "5"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "eval.json").read_text())
    b = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert a["results"] == b["results"] and a["sets"] == b["sets"]
    assert [s["name"] for s in a["sets"]] == ["synthetic-easy", "gsm8k-test"] and all(len(s["sha256"]) == 64 for s in a["sets"])
    assert a["config"]["sampling"]["seed"] == 5 and a["config"]["sampling"]["temperature"] == 1.0
    result = a["results"]["synthetic-easy"]
    assert result["traces"] == 4 and "pass@2" in result and result["reviewer"] == "oracle"
    assert a["results"]["gsm8k-test"]["reviewer"] == "reference"
    assert set(result["faithfulness"]) == {"reference", "early", "mistakes", "filler"}
    for name in ("accuracy.png", "tokens_per_insight.png", "synthetic-easy.traces.jsonl", "gsm8k-test.probes.jsonl"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    curves = [r["faithfulness"]["early"] for r in a["results"].values() if r["faithfulness"].get("early")]
    drawn = any(early["mean_curve"]["same_answer"] for early in curves)
    assert (tmp_path / "a" / "early_answering.png").exists() == drawn  # no empty plot when no trace was probed
    assert "tokens per insight" in printed and "synthetic-easy" in printed
    # an earlier evaluation is replaced only with --overwrite
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert main([*args, "--probes", "", "--sets", "synthetic-easy:1", "--out", str(tmp_path / "a"), "--overwrite"]) == 0


def test_eval_probes_only_the_chosen_sets_and_traces(tmp_path, tiny_model_dir):
    args = ["eval", "--model", str(tiny_model_dir), "--sets", "synthetic-easy:3,synthetic-medium:2", "--max-new-tokens", "8",
            "--probes", "early", "--probe-sets", "synthetic-easy", "--probe-limit", "2", "--out", str(tmp_path / "e")]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert report["config"]["probe_sets"] == ["synthetic-easy"] and report["config"]["probe_limit"] == 2
    assert report["results"]["synthetic-easy"]["traces"] == 3 and report["results"]["synthetic-medium"]["traces"] == 2
    traces = [json.loads(line)["id"] for line in (tmp_path / "e" / "synthetic-easy.traces.jsonl").read_text().splitlines()]
    probed = [json.loads(line) for line in (tmp_path / "e" / "synthetic-easy.probes.jsonl").read_text().splitlines()]
    assert {row["trace_id"] for row in probed if row["probe"] == "early"} == set(traces[:2])
    assert "early" in report["results"]["synthetic-easy"]["faithfulness"]
    assert "early" not in report["results"]["synthetic-medium"].get("faithfulness", {})
    assert (tmp_path / "e" / "synthetic-medium.probes.jsonl").read_text() == ""
