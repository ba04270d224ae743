"""Portable runs (issue 23, item 4): a run's config.yaml names models by what they are, never
by a cache path, and trains as it is on a machine with an empty cache (the warm start rebuilt
from its recipe)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from dca.cli import main
from dca.errors import UserError
from dca.model import cache_dir, embedded_checkpoint_dir, portable_model_name, resolve_model_path, warmstart_cache_dir


def _all_strings(data) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _all_strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _all_strings(v)]
    return [data] if isinstance(data, str) else []


def test_cache_paths_become_names(tmp_path, monkeypatch):
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    (warmstart_cache_dir() / "abc123").mkdir(parents=True)
    embedded_checkpoint_dir().mkdir(parents=True)
    assert portable_model_name(str(warmstart_cache_dir() / "abc123")) == "warmstart:abc123"
    assert portable_model_name(str(embedded_checkpoint_dir())) == "embedded"
    (tmp_path / "models" / "mine").mkdir(parents=True)
    assert portable_model_name(str(tmp_path / "models" / "mine"), relative_to=tmp_path / "runs" / "r") == os.path.join("..", "..", "models", "mine")
    assert portable_model_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_warm_start_missing_from_the_cache_says_how_to_rebuild_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match=r"warmstart:0123abcd is not in this machine's cache .*give its recipe instead"):
        resolve_model_path("warmstart:0123abcd")


def test_a_runs_config_trains_on_a_fresh_cache_from_another_directory(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """Train with a warm start; the run's config.yaml holds the recipe and relative paths only.
    Then, from another directory and with an empty cache, `dca train --config <run>/config.yaml`
    rebuilds the warm start and trains."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, project / "models" / "tiny")
    config = {
        "model": "models/tiny",  # relative to the config's directory
        "warmstart": {"steps": 1, "batch_size": 2, "problems": {"count": 2, "seed": 3}},
        "problems": {"synthetic": {"count": 4, "seed": 1}},
        "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 8},
    }
    (project / "run.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache-a"))
    monkeypatch.chdir(tmp_path)  # not the config's directory
    assert main(["train", "--config", "project/run.yaml", "--out", "project/runs/first"]) == 0
    saved = project / "runs" / "first" / "config.yaml"
    recorded = yaml.safe_load(saved.read_text())
    assert recorded["model"] == os.path.join("..", "..", "models", "tiny") and recorded["warmstart"]["steps"] == 1
    assert not [s for s in _all_strings(recorded) if os.path.isabs(s) or str(cache_dir()) in s]

    # "Another machine": an empty cache, another current directory.
    fresh = tmp_path / "cache-b"
    monkeypatch.setenv("DCA_CACHE_DIR", str(fresh))
    monkeypatch.chdir(project / "runs")
    capsys.readouterr()
    assert main(["train", "--config", "first/config.yaml", "--out", "second"]) == 0
    printed = capsys.readouterr().out
    assert "warm start: 1 SFT steps on gold CoTs" in printed  # rebuilt from its recipe
    assert list((fresh / "warmstart").iterdir())
    assert json.loads((project / "runs" / "second" / "run.json").read_text())["status"] == "finished"
    assert yaml.safe_load((project / "runs" / "second" / "config.yaml").read_text())["model"] == os.path.join("..", "..", "models", "tiny")
