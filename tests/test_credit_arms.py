"""The credit registry's policies on hand-made labels, the related-work arms (capo, oar, the
length-penalty reward), the degraded oracles, and every new arm run for real in the experiment
runner on the tiny model (one step, two seeds) with the seed-level report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dca.credit import ANSWER, POLICIES, CreditConfig, TraceLabels, apply_policy
from dca.records import CONTRIBUTIONS
from dca.train.config import CreditSettings
from dca.train.length_reward import length_penalized

ROOT = Path(__file__).resolve().parents[1]

# A failed completion: a useful step (units 0), a padding step (1), an error step (2), the answer (3).
TOKENS = (0, 0, 0, 0, 1, 1, 1, 1, 2, 2, ANSWER, ANSWER)
LABELS = ("essential", "irrelevant", "error", "error")


def labels(**overrides) -> TraceLabels:
    fields = dict(trace_id="t", token_units=TOKENS, unit_labels=LABELS, blamed=frozenset({2, 3}))
    return TraceLabels(**{**fields, **overrides})


def weights(policy: str, advantage: float, **options) -> list[float]:
    out = apply_policy([labels()], [advantage], CreditConfig(policy=policy, **options))
    return [round(x / advantage, 6) for x in out.advantages[0]]


def test_every_registered_policy_is_a_setting_and_returns_a_batch_array() -> None:
    assert set(POLICIES) >= {"uniform", "mask", "conserve", "random", "signed", "signed-random", "capo", "oar"}
    short = TraceLabels(trace_id="s", token_units=(0, ANSWER), unit_labels=("essential",))
    for name, policy in POLICIES.items():
        assert policy.name == name and policy.summary and CreditSettings(policy=name).to_credit_config().policy == name
        batch = policy.function([labels(), short], [1.0, -2.0], CreditConfig(policy=name))
        assert batch.advantages.shape == (2, len(TOKENS)) and batch.counted.shape == (2, len(TOKENS))
        assert np.all(batch.advantages[1, 2:] == 0)  # past the short trace's end
        if policy.conserving:
            assert batch.advantages[0].sum() == pytest.approx(len(TOKENS))
            assert batch.advantages[1, :2].sum() == pytest.approx(-4.0)
    with pytest.raises(ValueError, match="unknown credit policy"):
        CreditSettings(policy="bogus")


def test_policy_tables_on_a_failed_completion() -> None:
    # 12 tokens; blamed: the error step (2 tokens) and the answer (2 tokens) -> 4 tokens
    assert weights("uniform", -1.0) == [1.0] * 12
    assert weights("signed", -1.0, max_weight=None) == [0.0] * 8 + [3.0] * 4
    # capped at 1.5: blamed tokens carry 1.5, the other 8 share the remaining 12 - 6 = 6
    assert weights("signed", -1.0) == [0.75] * 8 + [1.5] * 4
    assert weights("conserve", -1.0) == [2.0] * 4 + [0.0] * 6 + [2.0, 2.0]  # useful + answer: 6 tokens share 12
    # capo: A everywhere, -penalty on the error step (answer tokens keep the outcome advantage)
    out = apply_policy([labels()], [-1.0], CreditConfig(policy="capo", capo_penalty=0.5)).advantages[0]
    assert list(out) == [-1.0] * 8 + [-1.5, -1.5] + [-1.0, -1.0]
    out = apply_policy([labels()], [1.0], CreditConfig(policy="capo", capo_penalty=0.5)).advantages[0]
    assert list(out) == [1.0] * 8 + [0.5, 0.5] + [1.0, 1.0]
    # oar: useful and answer 1 + s, others 1 - s, scaled to sum to N
    w = weights("oar", 2.0, oar_strength=0.5)
    raw = [1.5] * 4 + [0.5] * 6 + [1.5] * 2
    assert w == pytest.approx([x * 12 / sum(raw) for x in raw]) and sum(w) == pytest.approx(12)


def test_policies_fall_back_on_a_failed_review() -> None:
    failed = labels(unit_labels=(), blamed=frozenset(), failure="review failed: timeout")
    for name in POLICIES:
        batch = apply_policy([failed], [-1.0], CreditConfig(policy=name))
        assert list(batch.advantages[0]) == [-1.0] * 12
        assert batch.fallbacks[0] == (None if name == "uniform" else "review failed: timeout")


@settings(max_examples=200, deadline=None)
@given(
    n_units=st.integers(1, 6),
    data=st.data(),
    advantage=st.floats(-3, 3).filter(lambda a: abs(a) > 1e-3),
    cap=st.floats(1.0, 4.0),
    policy=st.sampled_from(["signed", "signed-random"]),
)
def test_capped_signed_conserves_keeps_signs_and_bounds_every_weight(n_units, data, advantage, cap, policy) -> None:
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=n_units, max_size=n_units))
    token_units = tuple(u for u, size in enumerate(sizes) for _ in range(size)) + (ANSWER,) * data.draw(st.integers(0, 3))
    unit_labels = tuple(data.draw(st.lists(st.sampled_from(CONTRIBUTIONS), min_size=n_units, max_size=n_units)))
    trace = TraceLabels(trace_id="p", token_units=token_units, unit_labels=unit_labels,
                        blamed=frozenset(i for i, label in enumerate(unit_labels) if label in ("error", "failed_attempt")))  # fmt: skip
    out = apply_policy([trace], [advantage], CreditConfig(policy=policy, max_weight=cap)).advantages[0]
    n = len(token_units)
    assert out.sum() == pytest.approx(n * advantage, abs=1e-9)
    assert np.all(out * advantage >= -1e-12)
    assert np.all(np.abs(out) <= cap * abs(advantage) + 1e-9)


def test_length_penalty_reward_table() -> None:
    rewards = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    lengths = [10, 30, 5, 20, 20, 99]
    groups = ["a", "a", "a", "a", "b", "b"]
    # group a: correct lengths 10, 30, 20 -> 1, 1 - 0.5, 1 - 0.25; group b: one correct -> unchanged
    assert length_penalized(rewards, lengths, groups, 0.5) == [1.0, 0.5, 0.0, 0.75, 1.0, 0.0]
    assert min(r for r, x in zip(length_penalized(rewards, lengths, groups, 1.0), rewards) if x) >= 0.0


def test_degraded_oracles_by_name_and_a_random_reviewer() -> None:
    from dca.problems import SyntheticConfig, generate_problems, render_gold_cot
    from dca.review import BuildContext, build_reviewers
    from dca.review.registry import builtin_spec
    from dca.segment import segment
    from dca.train.config import TrainConfig

    assert builtin_spec("oracle-flip-0.2").flip_rate == 0.2 and builtin_spec("oracle-flip-0.2").relabel == "flip"
    assert (builtin_spec("oracle-random").flip_rate, builtin_spec("oracle-random").relabel) == (1.0, "random")
    assert builtin_spec("oracle-flip-1.5") is None and builtin_spec("oracle-flop") is None
    TrainConfig(reviewer="oracle-flip-0.4")  # usable from a run config and an experiment arm
    (oracle,) = build_reviewers([builtin_spec("oracle")], BuildContext())
    (rand,) = build_reviewers([builtin_spec("oracle-random")], BuildContext())
    import random

    from dca.records import UNVERIFIED

    drawn = [c for c in CONTRIBUTIONS if c != UNVERIFIED]  # a random reviewer never says "unverified"
    kept = total = 0
    counts = dict.fromkeys(drawn, 0)
    for i, problem in enumerate(generate_problems(30, SyntheticConfig(min_operations=2, max_operations=3, distractors=(1, 2), seed=9))):
        text = render_gold_cot(problem, irrelevant_rate=0.5, rng=random.Random(i)).text
        units = segment(text)
        truth = oracle.review(problem, text, units, trace_id=f"t{i}").unit_contributions()
        noisy = rand.review(problem, text, units, trace_id=f"t{i}").unit_contributions()
        for a, b in zip(truth, noisy):
            if a is not None:
                total += 1
                kept += a == b
                counts[b] += 1
    # labels independent of the truth: about 1/6 kept, every label drawn
    assert total > 100 and abs(kept / total - 1 / len(drawn)) < 0.08
    assert all(c > total / len(drawn) / 2 for c in counts.values())


def test_new_arms_run_in_the_experiment_runner_and_the_report_pairs_seeds(tmp_path) -> None:
    from dca.cli import main

    data = yaml.safe_load((ROOT / "experiments" / "phase1-smoke.yaml").read_text())
    data["base"]["grpo"]["steps"] = 1
    data["base"].pop("trl")
    data["arms"] = {
        "grpo": {"overrides": {"credit": {"policy": "uniform"}}},
        "dca-signed": {"overrides": {"credit": {"policy": "signed"}}},
        "capo": {"overrides": {"credit": {"policy": "capo"}}},
        "oar-labels": {"overrides": {"credit": {"policy": "oar"}}},
        "length-penalty": {"overrides": {"credit": {"policy": "uniform"}, "length_penalty": {"strength": 0.5}}},
        "signed-random": {"overrides": {"credit": {"policy": "signed"}, "reviewer": "oracle-random"}},
        "dca-signed-flip-0.2": {"overrides": {"credit": {"policy": "signed"}, "reviewer": "oracle-flip-0.2"}},
    }
    data["seeds"] = [0, 1]
    data["eval"] = {"every": 0, "curve_limit": 2, "max_new_tokens": 12, "probes": [], "sets": data["eval"]["sets"][:1]}
    spec_file = tmp_path / "arms.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec_file), "--out", str(out)]) == 0
    for arm in data["arms"]:
        for seed in (0, 1):
            run = out / "runs" / arm / f"seed-{seed}"
            assert (run / "final.json").exists(), (arm, seed)
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["credit"]["policy"] == data["arms"][arm]["overrides"]["credit"]["policy"]
    credits = [json.loads(line) for line in (out / "runs" / "capo" / "seed-0" / "credits.jsonl").read_text().splitlines()]
    assert credits and {c["policy"] for c in credits} == {"capo"}
    reviews = [json.loads(line) for line in (out / "runs" / "signed-random" / "seed-0" / "reviews.jsonl").read_text().splitlines()]
    assert reviews and {r["reviewer"] for r in reviews} == {"oracle-random"}
    figures = json.loads((out / "report" / "figures.json").read_text())
    rows = {r["arm"]: r for r in figures["sets"]["in-distribution"]}
    # measured by the exact oracle: marked only where the oracle also trained the arm
    assert rows["dca-signed"]["measured_by_training_reviewer"] and rows["capo"]["measured_by_training_reviewer"]
    assert not rows["grpo"]["measured_by_training_reviewer"] and not rows["length-penalty"]["measured_by_training_reviewer"]
    assert not rows["signed-random"]["measured_by_training_reviewer"] and not rows["dca-signed-flip-0.2"]["measured_by_training_reviewer"]
    paired = rows["capo"]["paired"]["accuracy"]
    assert paired["n"] == 2 and len(paired["per_seed"]) == 2
    md = (out / "report" / "report.md").read_text()
    assert "Seed-level paired differences to grpo" in md and f"one of {figures['comparisons']} comparisons" in md
    assert "Implementation check" in md and "capo (2 seeds): accuracy MDE" in md
