"""The micro world: its tokenizer, its model, padding by kind, and its bad inputs."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dca.credit import token_char_spans
from dca.demo import demo_markdown
from dca.train.micro import MICRO_PROBLEMS, MicroSettings, build_micro_model
from dca.micro.vocabulary import (
    SPECIAL_TOKENS,
    TOKENIZER_DIR,
    build_tokenizer,
    load_micro_tokenizer,
    unknown_pieces,
)
from dca.problems import SyntheticConfig, generate_problems
from dca.problems.gold import PaddingRates, padding_kind, render_gold_cot
from dca.domains import chat_messages
from dca.records import to_dict
from dca.domains import OracleReviewer
from dca.segment import segment

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tokenizer():
    return load_micro_tokenizer()


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory):
    return build_micro_model(tmp_path_factory.mktemp("micro") / "base", MicroSettings())


def _dca(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dca.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)


def _generator_texts():
    """Every kind of string the generator writes: prompts and gold CoTs (plain, padded at the
    old single rate, padded by kind at rate 1) over the generator's whole range of settings."""
    configs = [
        SyntheticConfig(seed=s, min_operations=lo, max_operations=hi, distractors=d, max_value=v)
        for s in range(3) for lo, hi in ((1, 1), (1, 2), (3, 5), (5, 5)) for d in ((0, 0), (1, 2), (4, 4)) for v in (10, 20, 99)
    ]  # fmt: skip
    for config in configs:
        for problem in generate_problems(12, config):
            rng = random.Random(0)
            yield problem, problem.question
            yield problem, render_gold_cot(problem, rng=rng).text
            yield problem, render_gold_cot(problem, irrelevant_rate=1.0, rng=rng).text
            yield problem, render_gold_cot(problem, rng=rng, padding=PaddingRates(restatement=1, off_path=1, check=1)).text


def test_the_shipped_tokenizer_is_the_one_the_vocabulary_builds(tokenizer):
    fresh = build_tokenizer()
    assert tokenizer.get_vocab() == fresh.get_vocab(), "rebuild with: PYTHONPATH=src python -m dca.micro.vocabulary"
    assert tokenizer.chat_template == fresh.chat_template
    assert len(tokenizer) <= 512
    assert tokenizer.pad_token == "<pad>" and tokenizer.eos_token == "<|end|>" and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_every_generator_string_round_trips_without_unknown_words(tokenizer):
    count = 0
    for problem, text in _generator_texts():
        prompt = tokenizer.apply_chat_template(chat_messages(problem), tokenize=False, add_generation_prompt=True)
        for t in (text, prompt):
            assert unknown_pieces(tokenizer, t) == [], t
            ids = tokenizer(t, add_special_tokens=False)["input_ids"]
            assert tokenizer.decode(ids) == t
            # credit's byte-level path aligns every token exactly
            spans = token_char_spans(tokenizer, ids, t)
            assert "".join(t[a:b] for a, b in spans) == t
        count += 1
    assert count > 1000


def test_any_text_the_model_can_write_re_encodes(tokenizer):
    """Decoded sequences of random vocabulary tokens (glued words included) encode again to the same text."""
    rng = random.Random(0)
    ordinary = [i for t, i in tokenizer.get_vocab().items() if t not in SPECIAL_TOKENS]
    for _ in range(3000):
        text = tokenizer.decode([rng.choice(ordinary) for _ in range(rng.randint(1, 24))])
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_the_chat_template_closes_each_turn_with_eos(tokenizer):
    problem = generate_problems(1, SyntheticConfig(seed=1))[0]
    messages = chat_messages(problem) + [{"role": "assistant", "content": "Answer: 7"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|system|>") and text.endswith("<|assistant|>Answer: 7<|end|>")
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt)


def test_unknown_text_fails_loudly(tokenizer):
    assert [tokenizer.backend_tokenizer.decoder.decode([p]) for p in unknown_pieces(tokenizer, "Ava has 3 zebras.")] == [" zebras"]
    assert unknown_pieces(tokenizer, "Ava hashas 3 apples.") == []  # glued words split into words
    with pytest.raises(Exception, match="Missing"):
        tokenizer("Ava has 3 zebras.")


def test_the_micro_model_is_an_ordinary_small_checkpoint(micro_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(micro_dir)
    assert sum(p.numel() for p in model.parameters()) <= 2_000_000
    assert model.config.vocab_size == len(AutoTokenizer.from_pretrained(micro_dir)) <= 512
    assert json.loads((micro_dir / "config.json").read_text())["dca_world"] == "micro"


def test_the_oracle_labels_each_padding_kind_irrelevant_and_names_its_kind():
    problems = generate_problems(40, SyntheticConfig(seed=3, **MICRO_PROBLEMS))
    seen = set()
    for problem in problems:
        cot = render_gold_cot(problem, rng=random.Random(problem.id), padding=PaddingRates(restatement=0.6, off_path=0.6, check=0.6))
        units = segment(cot.text)
        review = OracleReviewer().review(problem, cot.text, units, trace_id="t")
        by_unit = {i: (s.function, s.contribution) for s in review.steps for i in range(s.first_unit, s.last_unit + 1)}
        spans = cot.step_spans()
        for unit in units:
            if not unit.text.strip():
                continue
            (role,) = [s.role for s, (a, b) in zip(cot.steps, spans) if a <= unit.start + len(unit.text) - len(unit.text.lstrip()) < b]
            function, contribution = by_unit[unit.index]
            if role in ("irrelevant_fact", "irrelevant_computation", "performative_check"):
                assert contribution == "irrelevant", (unit.text, function, contribution)
                assert padding_kind(function) == padding_kind(role)
                seen.add(padding_kind(role))
            else:
                assert contribution != "irrelevant", unit.text
    assert seen == {"restatement", "off_path", "check"}


def test_padding_by_kind_follows_each_rate():
    problems = generate_problems(300, SyntheticConfig(seed=4, **MICRO_PROBLEMS))
    rng = random.Random(0)
    checks = computations = 0
    for problem in problems:
        cot = render_gold_cot(problem, rng=rng, padding=PaddingRates(check=0.5))
        roles = [s.role for s in cot.steps]
        assert not {"irrelevant_fact", "irrelevant_computation"} & set(roles)
        checks += roles.count("performative_check")
        computations += roles.count("computation")
    assert 0.4 < checks / computations < 0.6
    # the default path is unchanged: no padding kind appears without a rate
    cot = render_gold_cot(problems[0], rng=random.Random(0))
    assert all(s.role in ("given_fact", "computation", "conclusion") for s in cot.steps)


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written


def _assert_refused(result: subprocess.CompletedProcess, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_problems_outside_the_micro_vocabulary_are_refused(micro_dir, tmp_path):
    problem = to_dict(generate_problems(1, SyntheticConfig(seed=1))[0])
    problem["question"] = "A zebra has 3 stripes. How many stripes does it have?"
    (tmp_path / "problems.jsonl").write_text(json.dumps(problem) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _dca("rollout", "--model", str(micro_dir), "--problems", "problems.jsonl", "--out", "traces.jsonl", cwd=tmp_path)
    _assert_refused(result, "outside the micro vocabulary (first: 'A')")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_micro_checkpoint_with_another_tokenizer_is_refused(micro_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(micro_dir, broken)
    tokenizer_file = broken / "tokenizer.json"
    data = json.loads(tokenizer_file.read_text())
    data["model"]["vocab"]["Ġzebras"] = len(data["model"]["vocab"])
    tokenizer_file.write_text(json.dumps(data))
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps(to_dict(generate_problems(1, SyntheticConfig(seed=1))[0])) + "\n")
    digest = hashlib.sha256(tokenizer_file.read_bytes()).hexdigest()
    result = _dca("rollout", "--model", str(broken), "--problems", str(problems), "--out", "traces.jsonl", cwd=tmp_path)
    _assert_refused(result, "its tokenizer does not match the micro vocabulary")
    assert not (tmp_path / "traces.jsonl").exists() and hashlib.sha256(tokenizer_file.read_bytes()).hexdigest() == digest


def test_a_spec_asking_for_micro_with_a_hub_tokenizer_is_refused(tmp_path):
    spec = (ROOT / "experiments" / "micro-smoke.yaml").read_text()
    spec = spec.replace("model: micro", "model: micro\n  micro: {tokenizer: HuggingFaceTB/SmolLM2-135M-Instruct}", 1)
    (tmp_path / "spec.yaml").write_text(spec)
    result = _dca("experiment", "run", "spec.yaml", "--out", "runs", cwd=tmp_path)
    _assert_refused(result, "tokenizer")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------
# The shipped start, the smoke preset and the demo (the same trainer, credit and reviewers)


def test_the_shipped_start_matches_its_recipe():
    from dca.train.micro import MICRO_WARMSTART, SHIPPED_DIR, recipe_hash, shipped_start

    manifest = json.loads((SHIPPED_DIR / "recipe.json").read_text())
    assert manifest["recipe"] == recipe_hash(MicroSettings(), MICRO_WARMSTART), f"the recipe changed: rebuild with `{manifest['rebuild']}`"
    assert manifest["model.safetensors"] == hashlib.sha256((SHIPPED_DIR / "model.safetensors").read_bytes()).hexdigest()
    assert shipped_start() == SHIPPED_DIR


def test_a_shipped_start_is_used_only_while_it_matches_its_recipe(micro_dir, tmp_path, monkeypatch):
    from dca.train import micro as start

    monkeypatch.setattr(start, "SHIPPED_DIR", tmp_path / "shipped")
    assert start.shipped_start() is None
    start.install_start(micro_dir)  # as if the recipe had built micro_dir
    manifest = json.loads((tmp_path / "shipped" / "recipe.json").read_text())
    assert manifest["recipe"] == start.recipe_hash(MicroSettings(), start.MICRO_WARMSTART)
    assert manifest["model.safetensors"] == hashlib.sha256((tmp_path / "shipped" / "model.safetensors").read_bytes()).hexdigest()
    assert start.shipped_start() == tmp_path / "shipped" == start.micro_start()
    assert (tmp_path / "shipped" / "tokenizer.json").read_bytes() == (TOKENIZER_DIR / "tokenizer.json").read_bytes()
    changed = start.MICRO_WARMSTART.model_copy(update={"steps": start.MICRO_WARMSTART.steps + 1})
    monkeypatch.setattr(start, "MICRO_WARMSTART", changed)
    assert start.shipped_start() is None  # a changed recipe no longer matches the shipped file


@pytest.mark.parametrize("name", ["micro", "micro-controls"])
def test_the_powered_presets_are_sized_as_issue_20_asks(name):
    """>= 6 seeds, >= 5,000 completions per GRPO run, plain GRPO in each preset (every arm pairs
    with its own preset's grpo runs), and both conditions in the main preset."""
    from dca.experiment.spec import load_spec

    spec = load_spec(ROOT / "experiments" / f"{name}.yaml")
    assert len(spec.seeds) >= 6 and "grpo" in spec.arms
    grpo = spec.base["grpo"]
    assert grpo["steps"] * grpo["prompts_per_step"] * grpo["num_generations"] >= 5000
    conditions = {arm.condition for arm in spec.arms.values()}
    assert conditions == ({"padding-free", "padding-costs"} if name == "micro" else {"padding-free"})
    assert "WALL TIME" in (ROOT / "experiments" / f"{name}.yaml").read_text()  # measured from a pilot, in the header


def test_micro_smoke_runs_every_arm_in_both_conditions(tmp_path):
    from dca.experiment.spec import load_spec

    spec = load_spec(ROOT / "experiments" / "micro-smoke.yaml")
    limits = {spec.arm_config(arm, 0).grpo.max_completion_length for arm, a in spec.arms.items() if a.method == "grpo"}
    assert len(limits) == 2  # padding-free and padding-costs
    out = tmp_path / "smoke"
    result = _dca("experiment", "run", str(ROOT / "experiments" / "micro-smoke.yaml"), "--out", str(out), cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "experiment.json").read_text())["status"] == "finished"
    start = json.loads((out / "start" / "start.json").read_text())
    assert start["parameters"] <= 2_000_000 and start["measured"]["problems"] == 8
    for arm in spec.arms:
        final = json.loads((out / "runs" / arm / "seed-0" / "final.json").read_text())
        assert final["sets"]["in-distribution"]["traces"] == 16
    report = _dca("experiment", "report", str(out), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]


def test_the_demo_runs_in_the_micro_world_by_default(tmp_path):
    out = tmp_path / "demo"
    result = _dca("demo", "--steps", "2", "--eval-problems", "12", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((out / "demo.json").read_text())
    assert figures["world"] == "micro" and figures["intervals"]["problems"] == 12
    share = figures["intervals"]["irrelevant_share"]
    assert share["grpo"]["low"] <= share["grpo"]["value"] <= share["grpo"]["high"]
    assert share["dca_minus_grpo"]["value"] == pytest.approx(share["dca"]["value"] - share["grpo"]["value"])
    assert figures["arms"]["grpo"]["held_out"]["irrelevant_share"] == pytest.approx(share["grpo"]["value"])
    assert "95 % intervals over 12 held-out problems" in result.stdout
    assert json.loads((out / "start" / "start.json").read_text())["model"] == "micro"
    # The README's table is rendered from this run's demo.json by the same function.
    assert "| irrelevant share |" in demo_markdown(figures)


def test_the_readme_demo_table_is_rendered_from_the_committed_demo_json():
    """The README shows the demo's figures as `demo_markdown` renders docs/results/demo-micro.json
    (the demo.json of the run the README names), so the two cannot drift apart."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = "<!-- demo-table: docs/results/demo-micro.json -->\n"
    table = readme[readme.index(marker) + len(marker) : readme.index("<!-- /demo-table -->")]
    figures = json.loads((ROOT / "docs" / "results" / "demo-micro.json").read_text(encoding="utf-8"))
    assert figures["world"] == "micro" and figures["intervals"]["problems"] >= 200
    assert table == demo_markdown(figures)
