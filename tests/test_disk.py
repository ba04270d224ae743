"""Disk (issue 23, item 5): the final checkpoint in half precision or not at all, and the run
summary's count of the bytes it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dca.cli import main
from dca.model import load_model


def _train(tmp_path: Path, model: Path, name: str, **settings) -> Path:
    config = {
        "model": str(model),
        "problems": {"synthetic": {"count": 4, "seed": 1}},
        "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 8},
        **settings,
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / name)]) == 0
    return tmp_path / name


def test_half_precision_halves_the_checkpoint_and_none_saves_none(tmp_path, tiny_model_dir):
    full = _train(tmp_path, tiny_model_dir, "full")
    half = _train(tmp_path, tiny_model_dir, "half", save_dtype="bfloat16")
    none = _train(tmp_path, tiny_model_dir, "none", save="none")
    full_size = (full / "checkpoint" / "model.safetensors").stat().st_size
    half_size = (half / "checkpoint" / "model.safetensors").stat().st_size
    assert 0.45 < half_size / full_size < 0.55
    assert json.loads((half / "checkpoint" / "config.json").read_text())["dtype"] == "bfloat16"
    model, _ = load_model(str(half / "checkpoint"))  # read back in float32, as every stage loads it
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"
    assert not (none / "checkpoint").exists() and (none / "traces.jsonl").exists()
    for run in (full, half, none):
        summary = json.loads((run / "summary.json").read_text())
        on_disk = sum(p.stat().st_size for p in run.rglob("*") if p.is_file() and p.name not in ("run.json", "summary.json", ".dca-lock"))
        assert summary["bytes_written"] == on_disk
    assert json.loads((none / "summary.json").read_text())["bytes_written"] < full_size
