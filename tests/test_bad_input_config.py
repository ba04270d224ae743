"""Requirements checked when a run's config is read (issue 23, item 2): each is one stderr line
``dca: error: ...``, exit code 2, and nothing written, before a model loads or a run directory
exists. The cases run `dca.cli.main` in this process (no subprocess per argument); a case
that would load a model or make a run directory fails the "nothing written" check.

Also: a run directory whose run failed before its first step does not block a plain rerun.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from dca.cli import main
from dca.problems.gsm8k import load_gsm8k
from dca.files import write_jsonl


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def _train_yaml(root: Path, model: Path, name: str, **change) -> str:
    config = {
        "model": str(model),
        "problems": {"synthetic": {"count": 4, "seed": 1}},
        "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 12},
        **change,
    }
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return f"{name}.yaml"


@pytest.fixture
def world(tmp_path, tiny_model_dir, monkeypatch):
    """A folder of inputs, the current directory of each case; the hub is offline."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    record = {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "He has 3+4=<<3+4=7>>7.\n#### 7"}
    (tmp_path / "raw-gsm8k.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    write_jsonl(tmp_path / "gsm8k.jsonl", load_gsm8k(str(tmp_path / "raw-gsm8k.jsonl")))
    (tmp_path / "reviewers.yaml").write_text(
        yaml.safe_dump({"reviewers": [
            {"name": "far-away", "backend": "hf", "model": "nobody-here/no-such-model"},
            {"name": "missing-dir", "backend": "counterfactual", "model": "./no-model-here"},
            {"name": "noisy-reference", "backend": "noisy", "inner": "reference"},
            {"name": "reference", "backend": "reference"},
        ]}),  # fmt: skip
        encoding="utf-8",
    )
    return tmp_path


def _cases(model: Path, root: Path) -> list[tuple[str, list[str], str]]:
    """(id, argv, a regular expression the one stderr line must match)."""
    train = lambda name, **change: ["train", "--config", _train_yaml(root, model, name, **change), "--out", f"runs/{name}"]  # noqa: E731
    cases = [
        ("vllm-not-installed", train("vllm", trl={"use_vllm": True}), r"trl\.use_vllm: vLLM is not installed"),
        ("tracker-not-installed", train("wandb", trl={"report_to": "wandb"}), r"trl\.report_to: wandb is not installed"),
        ("tracker-unknown", train("tracker", trl={"report_to": "notebook-of-mine"}), r"not a tracker transformers knows"),
        ("reference-on-synthetic", train("reference", reviewer="reference"), r"reviewer 'reference' \(reference\) cannot review arithmetic problems"),
        ("oracle-on-gsm8k", train("oracle-gsm8k", reviewer="oracle", problems={"file": "gsm8k.jsonl"}), r"reviewer 'oracle' \(oracle\) cannot review gsm8k problems"),
        ("noisy-of-reference", train("noisy", reviewer="noisy-reference", reviewers_file="reviewers.yaml"), r"reviewer 'noisy-reference' \(noisy\) cannot review arithmetic"),
        ("hf-reviewer-not-local", train("far-away", reviewer="far-away", reviewers_file="reviewers.yaml"), r"reviewer 'far-away' \(hf\): model nobody-here/no-such-model is not available locally"),
        ("reviewer-model-dir-missing", train("missing-dir", reviewer="missing-dir", reviewers_file="reviewers.yaml"), r"reviewer 'missing-dir' \(counterfactual\): model path ./no-model-here does not exist"),
    ]
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        gpu = False
    if not gpu:
        cases.append(("fp16-without-gpu", train("fp16", trl={"fp16": True}), r"trl\.fp16: fp16 mixed precision needs a GPU"))
    return cases


def test_each_requirement_is_one_line_exit_2_and_writes_nothing(world, tiny_model_dir, capsys):
    cases = _cases(Path(tiny_model_dir), world)
    before = _snapshot(world)
    for case_id, argv, needle in cases:
        code = main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        shown = f"{case_id}: dca {' '.join(argv)}\nexit {code}\nstderr: {captured.err[-1500:]}\nstdout: {captured.out[-500:]}"
        assert code == 2, shown
        assert len(lines) == 1 and lines[0].startswith("dca: error: "), shown
        assert re.search(needle, lines[0]), f"expected /{needle}/\n{shown}"
        assert _snapshot(world) == before, f"{case_id} wrote {sorted(set(_snapshot(world)) - set(before))}"


def test_review_refuses_a_reviewer_that_cannot_review_the_domain(world, capsys):
    """`dca review` makes the same check: the reference reviewer on arithmetic traces."""
    from gold_traces import gold_traces

    golds = gold_traces(2, seed=3)
    write_jsonl(world / "traces.jsonl", [g.trace for g in golds])
    write_jsonl(world / "problems.jsonl", [g.problem for g in golds])
    before = _snapshot(world)
    code = main(["review", "--traces", "traces.jsonl", "--reviewers", "reviewers.yaml", "--reviewer", "reference", "--no-cache", "--out", "r.jsonl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "reviewer 'reference' (reference) cannot review arithmetic problems" in err[0], err
    assert _snapshot(world) == before


def test_a_run_that_failed_before_its_first_step_does_not_block_a_rerun(world, tiny_model_dir, capsys):
    config = _train_yaml(world, Path(tiny_model_dir), "rerun")
    out = world / "runs" / "rerun"
    out.mkdir(parents=True)
    (out / "config.yaml").write_text("model: embedded\n")
    (out / "run.json").write_text(json.dumps({"status": "failed", "error": "ImportError: vllm is not installed"}))
    assert main(["train", "--config", config, "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "it failed before its first step (ImportError: vllm is not installed)" in printed
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_a_run_that_failed_after_a_step_still_needs_overwrite(world, tiny_model_dir, capsys):
    config = _train_yaml(world, Path(tiny_model_dir), "kept")
    out = world / "runs" / "kept"
    out.mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: out of memory"}))
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.1}\n')
    before = _snapshot(world)
    assert main(["train", "--config", config, "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert _snapshot(world) == before
