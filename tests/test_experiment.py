"""`dca experiment`: the spec, the statistics, the smoke preset end to end, resuming, the SFT arms."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dca.cli import main
from dca.errors import UserError
from dca.files import LOCK_NAME, unlock_dir
from lock_holder import held_locks
from dca.experiment.runner import prepare_experiment_dir, run_state, training_order
from dca.experiment.spec import deep_merge, load_spec, parse_spec
from dca.experiment.stats import MDE_FACTOR, bootstrap, nanmean, relative_difference

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments" / "phase1-smoke.yaml"


def smoke_data() -> dict:
    return yaml.safe_load(SMOKE.read_text())


# ---------------------------------------------------------------------------------------------
# Spec


def test_presets_parse_and_state_each_arms_budget():
    for name in ("phase1-smoke", "phase1-cpu", "phase1-gpu"):
        spec = load_spec(ROOT / "experiments" / f"{name}.yaml")
        assert {"grpo", "dca-conserve", "dca-signed", "dca-random", "edit-sft", "rft"} <= set(spec.arms)
        g = spec.base_config(0).grpo
        for arm in spec.arms:
            budget = spec.budget(arm)
            assert budget["completions_sampled"] == g.steps * g.prompts_per_step * g.num_generations
            assert budget["optimizer_steps"] == g.steps
        assert spec.budget("rft")["reviews"] == 0 and spec.budget("edit-sft")["reviews"] == spec.budget("grpo")["reviews"] > 0
    gpu = load_spec(ROOT / "experiments" / "phase1-gpu.yaml")
    g = gpu.base_config(0).grpo
    assert len(gpu.seeds) >= 3 and g.steps >= 100 and g.prompts_per_step * g.num_generations == 64


def test_arm_overrides_merge_into_the_base_config():
    spec = parse_spec(smoke_data())
    assert spec.arm_config("grpo", 3, model="m").credit.policy == "uniform"
    config = spec.arm_config("dca-conserve", 3, model="m")
    assert config.credit.policy == "conserve" and config.seed == 3 and config.model == "m"
    assert config.grpo.num_generations == 2  # the base's other settings survive the merge
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 5}, "d": [1]}) == {"a": {"b": 5, "c": 2}, "d": [1]}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["arms"]["grpo"]["overrides"].update(credit={"policy": "nope"}), "arms.grpo.overrides: credit.policy"),
        (lambda d: d["base"].update(model="embedded"), "set by the experiment"),
        (lambda d: d.update(baseline="plain"), "baseline arm 'plain'"),
        (lambda d: d["arms"].update({"Bad Name": {}}), "arm name"),
        (lambda d: d["arms"]["rft"].update(overrides={"seed": 1}), "sft arm takes no overrides"),
        (lambda d: d["eval"].update(agreement_reviewers=["oracle"]), "two or more reviewers"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(seeds=[1, 1]), "seeds repeat"),
        (lambda d: d["eval"].update(probe_sets=["gsm8k"]), "probe_sets: 'gsm8k' is not an eval set"),
    ],
)
def test_a_bad_spec_is_one_clear_error(change, message):
    data = smoke_data()
    change(data)
    with pytest.raises(UserError, match=message):
        parse_spec(data)


def test_a_spec_file_that_repeats_a_key_is_refused(tmp_path):
    """Specs are read by `dca.files.read_yaml`, the one YAML reader: YAML would keep the last
    of two ``seeds:`` silently."""
    path = tmp_path / "spec.yaml"
    path.write_text(SMOKE.read_text(encoding="utf-8") + "\nseeds: [7]\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"spec.yaml:\d+: not valid YAML: duplicate key 'seeds'"):
        load_spec(path)
    with pytest.raises(UserError, match=r"experiment spec file .*nowhere.yaml does not exist"):
        load_spec(tmp_path / "nowhere.yaml")


def test_training_order_is_trls_sampler_order():
    from trl.trainer.utils import RepeatSampler

    sampler = RepeatSampler(list(range(10)), mini_repeat_count=4, batch_size=1, repeat_count=1, shuffle=True, seed=3)
    trl_order = list(sampler)[::4]
    assert training_order(10, 3, 10) == trl_order
    assert training_order(10, 3, 25)[:10] == trl_order and len(training_order(10, 3, 25)) == 25


# ---------------------------------------------------------------------------------------------
# Statistics


def test_bootstrap_interval_reflects_seed_spread_and_pairing():
    rng = np.random.default_rng(0)
    flat = (rng.random((3, 200)) < 0.5).astype(float)
    spread = flat.copy()
    spread[0] = 1.0  # one seed far from the others
    narrow, wide = bootstrap(nanmean, flat), bootstrap(nanmean, spread)
    assert narrow["low"] < narrow["value"] < narrow["high"]
    assert (wide["high"] - wide["low"]) > 2 * (narrow["high"] - narrow["low"])
    # a paired difference of a constant shift has no width; unpaired noise would
    diff = bootstrap(lambda a, b: nanmean(a - b), flat + 0.1, flat)
    assert diff["value"] == pytest.approx(0.1) and diff["high"] - diff["low"] < 1e-9
    assert bootstrap(relative_difference, 2 * (flat + 1), flat + 1)["value"] == pytest.approx(1.0)
    assert MDE_FACTOR == pytest.approx(2.8016, abs=1e-3)
    assert bootstrap(nanmean, np.zeros((1, 0)))["value"] is None


# ---------------------------------------------------------------------------------------------
# End to end


def test_smoke_preset_runs_every_arm_reports_and_resumes(tmp_path, capsys):
    out = tmp_path / "smoke"
    # The preset with its checkpoints kept, so that a finished run can be turned back into an
    # interrupted one below (by default they are dropped after the final evaluation).
    smoke = tmp_path / "smoke.yaml"
    smoke.write_text(SMOKE.read_text(encoding="utf-8") + "keep_checkpoints: true\n", encoding="utf-8")
    assert main(["experiment", "run", str(smoke), "--out", str(out)]) == 0
    spec = load_spec(smoke)
    for arm in spec.arms:
        run = out / "runs" / arm / "seed-0"
        assert run_state(run) == "finished", arm
        final = json.loads((run / "final.json").read_text())
        assert set(final["sets"]) == {"in-distribution", "harder"}
        assert (run / "eval" / "eval.json").exists() and (run / "eval" / "harder.measures.jsonl").exists()
        assert final["agreement"]["reviewers"] == ["oracle", "reference"]
        # probes only on the probed set, and only on its first probe_limit traces
        probed = [json.loads(line) for line in (run / "eval" / "in-distribution.probes.jsonl").read_text().splitlines()]
        assert {p["trace_id"] for p in probed if p["probe"] == "early"} == {
            json.loads(line)["id"] for line in (run / "eval" / "in-distribution.traces.jsonl").read_text().splitlines()[:2]
        }
        assert (run / "eval" / "harder.probes.jsonl").read_text() == "" and final["sets"]["harder"]["early_answering_aoc"] is None
        curve = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()] if (run / "curve.jsonl").exists() else []
        start_rows = [json.loads(line) for line in (out / "start" / "curve.jsonl").read_text().splitlines()]
        assert [row for row in curve if row["step"] == 0] == start_rows  # the start model, evaluated once for every run
        if spec.arms[arm].method == "grpo":
            assert sorted({row["step"] for row in curve}) == [0, 1] and yaml.safe_load((run / "config.yaml").read_text())["seed"] == 0
            assert len((run / "steps.jsonl").read_text().splitlines()) == 2
    start = json.loads((out / "start" / "start.json").read_text())
    assert start["model"] == "tiny" and "groups_with_reward_variance" in start["measured"]
    md = (out / "report" / "report.md").read_text()
    page = (out / "report" / "report.html").read_text()
    assert "Minimum detectable effect" in md and "| dca-random |" in md
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page and "<script" not in page
    printed = capsys.readouterr().out
    assert "[6/6] rft seed 0: done" in printed and "ETA" in printed

    # resume: a finished run is skipped, a trained one only re-evaluated, a started one restarted
    untouched = (out / "runs" / "grpo" / "seed-0" / "final.json").stat().st_mtime_ns
    (out / "runs" / "dca-conserve" / "seed-0" / "final.json").unlink()
    (out / "runs" / "dca-conserve" / "seed-0" / "eval" / "eval.json").unlink()  # interrupted during its final evaluation
    for arm in ("dca-random", "dca-signed"):  # interrupted during training: no summary, run.json says running
        run = out / "runs" / arm / "seed-0"
        (run / "final.json").unlink()
        (run / "summary.json").unlink()
        (run / "run.json").write_text(json.dumps({"status": "running"}))
        assert run_state(run) == "started"
    shutil.rmtree(out / "runs" / "dca-random" / "seed-0" / "trainer" / "checkpoint-2")  # its last checkpoint: step 1
    shutil.rmtree(out / "runs" / "dca-signed" / "seed-0" / "trainer")  # no checkpoint at all
    assert main(["experiment", "run", str(smoke), "--out", str(out), "--only", "grpo,dca-conserve,dca-random,dca-signed", "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "grpo seed 0: finished earlier, skipped" in printed
    assert "dca-conserve seed 0: training finished earlier; final evaluation" in printed
    assert "dca-random seed 0: resuming an interrupted run from its checkpoint at step 1" in printed
    assert "dca-signed seed 0: restarting an interrupted run" in printed
    resumed = out / "runs" / "dca-random" / "seed-0"
    assert [json.loads(line)["step"] for line in (resumed / "steps.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(json.loads(line)["step"] for line in (resumed / "curve.jsonl").read_text().splitlines()) == [0, 0, 1, 1]
    assert json.loads((resumed / "summary.json").read_text())["steps"] == 2
    assert (out / "runs" / "grpo" / "seed-0" / "final.json").stat().st_mtime_ns == untouched
    assert all(run_state(out / "runs" / a / "seed-0") == "finished" for a in spec.arms)
    record = json.loads((out / "experiment.json").read_text())
    assert record["status"] == "finished" and len(record["invocations"]) == 2

    assert main(["experiment", "report", str(out)]) == 0
    assert "accuracy MDE" in capsys.readouterr().out


def test_sft_arms_train_on_the_shared_rollouts(tmp_path):
    """The SFT arms fine-tune on the start model's solved rollouts (written here from gold CoTs,
    which a random start model cannot produce): edit-sft on the edited ones, rft on them unedited."""
    from dca.problems import render_gold_cot
    from dca.problems.answer import check_answer
    from dca.records import Trace
    from dca.files import read_jsonl, write_jsonl
    from dca.review import OracleReviewer
    from dca.segment import segment
    from dca.domains.sources import load_problems

    data = smoke_data()
    data["eval"]["agreement_reviewers"] = []
    data["start"]["measure"] = 0
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    spec = load_spec(spec_file)
    out = tmp_path / "exp"
    prepare_experiment_dir(spec, out)
    rollouts = out / "rollouts" / "seed-0"
    rollouts.mkdir(parents=True)
    problems = load_problems(spec.base_config(0).problems)
    rng = random.Random(0)
    traces = []
    for p in problems:
        text = render_gold_cot(p, irrelevant_rate=0.6, rng=rng).text
        check = check_answer(text, p.answer)
        traces.append(Trace(id=f"{p.id}/g0", problem_id=p.id, prompt="", completion=text, answer=check.answer, outcome=check.outcome, reward=check.reward, group=p.id))
    oracle = OracleReviewer()
    reviews = [oracle.review(next(p for p in problems if p.id == t.problem_id), t.completion, segment(t.completion), trace_id=t.id) for t in traces]
    write_jsonl(rollouts / "problems.jsonl", problems)
    write_jsonl(rollouts / "traces.jsonl", traces)
    write_jsonl(rollouts / "reviews.jsonl", reviews)
    (rollouts / "done.json").write_text("{}")

    assert main(["experiment", "run", str(spec_file), "--out", str(out), "--only", "edit-sft,rft", "--no-report"]) == 0
    for arm in ("edit-sft", "rft"):
        run = out / "runs" / arm / "seed-0"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["train"]["trained_on"] == len(problems)
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # two logged SFT losses
        assert not (run / "checkpoint").exists()  # dropped after the final evaluation (keep_checkpoints: false)
        assert sorted({json.loads(line)["step"] for line in (run / "curve.jsonl").read_text().splitlines()}) == [0, 1]
    from dca.edit import Edit

    edited = read_jsonl(out / "runs" / "edit-sft" / "seed-0" / "edits.jsonl", Edit)
    unedited = read_jsonl(out / "runs" / "rft" / "seed-0" / "edits.jsonl", Edit)
    assert sum(e.tokens_after for e in edited) < sum(e.tokens_after for e in unedited)
    assert not (out / "runs" / "rft" / "seed-0" / "reviews.jsonl").exists()
    assert main(["experiment", "report", str(out)]) == 0
    assert "| edit-sft |" in (out / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--only", "nope"], "--only nope: no such arm"),
        (["--seeds", "5"], "--seeds 5: not a seed"),
        (["--seeds", "a"], "comma-separated integers"),
    ],
)
def test_run_refuses_bad_selections(tmp_path, capsys, argv, message):
    assert main(["experiment", "run", str(SMOKE), "--out", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_experiment_directory_keeps_its_spec(tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["experiment", "run", str(SMOKE), "--out", str(out)]) == 2
    assert "holds no experiment" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    data = smoke_data()
    (other / "spec.yaml").write_text("name: else\n")
    assert main(["experiment", "run", str(SMOKE), "--out", str(other)]) == 2
    assert "different spec" in capsys.readouterr().err
    assert main(["experiment", "report", str(tmp_path / "missing")]) == 2
    assert "no spec.yaml" in capsys.readouterr().err
    shutil.rmtree(other)
    assert data["name"] == "phase1-smoke"


def test_an_experiment_directory_has_one_writer(tmp_path, capsys):
    """A second `experiment run` on a directory another process is writing is refused with the
    holder's pid, before it reads or writes anything there; the lock goes with its holder."""
    out = tmp_path / "exp"
    spec = load_spec(SMOKE)
    prepare_experiment_dir(spec, out)  # this process now holds the lock
    unlock_dir(out)
    assert not (out / LOCK_NAME).exists() and (out / "spec.yaml").exists()
    with held_locks(out, seconds=120) as holder:
        before = sorted(p.name for p in out.iterdir())
        assert main(["experiment", "run", str(SMOKE), "--out", str(out)]) == 2
        assert f"is being written by another process (pid {holder.pid})" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == before
    prepare_experiment_dir(spec, out)  # the holder is gone: the directory can be taken again
    unlock_dir(out)


def test_report_over_two_seeds_pairs_problems_and_states_the_mde(tmp_path):
    """Report figures from hand-made run directories (two arms x two seeds, known outcomes)."""
    from dca.experiment.measures import TraceMeasure
    from dca.experiment.report import build_report
    from dca.experiment.runner import prepare_experiment_dir
    from dca.files import write_jsonl
    from dca.domains.sources import load_problems

    data = smoke_data()
    data["arms"] = {"grpo": data["arms"]["grpo"], "dca-conserve": data["arms"]["dca-conserve"]}
    data["seeds"] = [0, 1]
    data["eval"]["sets"] = data["eval"]["sets"][:1]
    data["eval"]["sets"][0]["problems"]["synthetic"]["count"] = 40
    spec = parse_spec(data)
    out = tmp_path / "exp"
    prepare_experiment_dir(spec, out)
    problems = load_problems(spec.eval.sets[0].problems)
    (out / "eval-sets").mkdir()
    write_jsonl(out / "eval-sets" / "in-distribution.jsonl", problems)
    for arm, solved in (("grpo", 20), ("dca-conserve", 30)):  # dca solves 10 more of the same 40 problems
        for seed in (0, 1):
            run = out / "runs" / arm / f"seed-{seed}"
            (run / "eval").mkdir(parents=True)
            tokens = 60 if arm == "grpo" else 45
            write_jsonl(run / "eval" / "in-distribution.measures.jsonl", [
                TraceMeasure(problem_id=p.id, correct=i < solved, completion_tokens=tokens + 5, cot_tokens=tokens, useful_steps=3,
                             labelled_tokens=tokens, irrelevant_tokens=tokens // 3 if arm == "grpo" else 0, review_ok=True)
                for i, p in enumerate(problems)
            ])  # fmt: skip
            rows = [{"step": s, "set": "in-distribution", "accuracy": 0.5 + 0.01 * s + 0.02 * seed} for s in (0, 2)]
            (run / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            final = {
                "sets": {"in-distribution": {"early_answering_aoc": 0.5, "reviewer": "oracle"}},
                "train": {"reward": [0.5], "groups_with_reward_variance": [0.5], "seconds_per_step": 2.0, "review_usage": {"reviews": 4, "reviews_failed": 0, "cost_usd": 0.0}},
                "seconds": 10.0,
            }
            (run / "final.json").write_text(json.dumps(final))
    figures = build_report(out)
    rows = {r["arm"]: r for r in figures["sets"]["in-distribution"]}
    assert rows["grpo"]["accuracy"]["value"] == pytest.approx(0.5) and rows["dca-conserve"]["accuracy"]["value"] == pytest.approx(0.75)
    diff = rows["dca-conserve"]["accuracy_diff"]
    assert diff["value"] == pytest.approx(0.25) and 0 < diff["low"] < 0.25 < diff["high"]
    assert rows["dca-conserve"]["cot_tokens_rel_diff"]["value"] == pytest.approx(-0.25)
    assert rows["grpo"]["irrelevant_share"]["value"] == pytest.approx(20 / 60) and rows["dca-conserve"]["irrelevant_share"]["value"] == 0
    assert rows["grpo"]["accuracy_seed_sd"] == 0.0
    assert diff["mde"] == pytest.approx(MDE_FACTOR * diff["se"])
    md = (out / "report" / "report.md").read_text()
    assert "accuracy MDE" in md and "+25.0 [" in md
    assert (out / "report" / "curve_accuracy.png").exists()


def test_credit_placement_reads_where_each_policy_put_the_advantage():
    """Gold CoTs (padded with irrelevant steps, some made wrong), the oracle's reviews, and the
    credit of each policy with one character per token: uniform credit spreads over every
    label, conserve moves positive advantage off the padding, signed moves negative advantage
    onto the wrong step."""
    from gold_traces import gold_traces, review_all

    from dca.credit import CreditConfig, compute_credit
    from dca.experiment.measures import credit_placement
    from dca.review import OracleReviewer

    golds = gold_traces(24, seed=5, wrong_share=0.4, irrelevant_rate=0.5)
    reviews = review_all(golds, [OracleReviewer()])
    assert {g.wrong for g in golds} == {True, False}

    def placement(policy: str, **options) -> dict:
        credits = []
        for gold, review in zip(golds, reviews):
            text = gold.trace.completion
            credits.append(compute_credit(
                trace_id=gold.trace.id, text=text, token_spans=[(i, i + 1) for i in range(len(text))], review=review,
                sequence_advantage=-1.0 if gold.wrong else 1.0, answer_span=None, config=CreditConfig(policy=policy, **options),
            ))  # fmt: skip
        return credit_placement(reviews, credits)

    uniform, conserve, signed = placement("uniform"), placement("conserve"), placement("signed")
    assert uniform["positive_traces"] == sum(not g.wrong for g in golds) and uniform["negative_traces"] == sum(g.wrong for g in golds)
    assert uniform["unlabelled"] == 0
    assert 0.05 < uniform["positive_on_irrelevant"] < 0.9  # plain GRPO rewards the padding with the rest
    assert conserve["positive_on_irrelevant"] == pytest.approx(0.0, abs=1e-9) and conserve["positive_on_useful"] == pytest.approx(1.0)
    uncapped = placement("signed", max_weight=None)
    assert uniform["negative_on_blamed"] < 0.5 < uncapped["negative_on_blamed"]
    assert uniform["negative_on_blamed"] < signed["negative_on_blamed"] < uncapped["negative_on_blamed"]  # the cap spreads the excess
    assert uncapped["negative_on_useful"] < signed["negative_on_useful"] < uniform["negative_on_useful"]
    assert conserve["negative_on_useful"] == pytest.approx(1.0)  # conserve puts a failure's penalty on the steps it calls useful
    assert credit_placement([], [])["positive_on_irrelevant"] is None
