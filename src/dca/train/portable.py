"""Portable run configs: a config means the same on every machine and from every directory.

- Models are named by what they are (`dca.model.resolve_model_path`): 'embedded', a
  ``warmstart:<key>`` of the cache, a hub id, or a path. A run's ``config.yaml`` never holds a
  path into the DCA cache: a warm start is kept as its recipe (``model:`` the base model,
  ``warmstart:`` its settings), rebuilt on first use on a machine whose cache lacks it.
- Relative paths in a config (``model``, ``reviewers_file``, ``problems.file``,
  ``eval_problems.file``) are relative to the config's own directory where such a path
  exists there (else to the current directory, as configs written for the repository root
  expect). A run's ``config.yaml`` writes them relative to the run directory, so
  ``dca train --config runs/X/config.yaml`` finds them from anywhere, and a copied tree of
  runs and checkpoints keeps working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..model import MODEL_NAMES, WARMSTART_PREFIX, portable_model_name
from .config import TrainConfig


def _is_name(value: str) -> bool:
    return value in MODEL_NAMES or value.startswith(WARMSTART_PREFIX)


def _map_paths(config: TrainConfig, change: Callable[[str], str]) -> TrainConfig:
    """`config` with `change` applied to every path it holds (names and hub ids included for
    ``model``: `change` leaves what is not a path alone)."""
    update: dict = {"model": change(config.model)}
    if config.reviewers_file is not None:
        update["reviewers_file"] = change(config.reviewers_file)
    for key in ("problems", "eval_problems"):
        settings = getattr(config, key)
        if settings is not None and settings.file is not None:
            update[key] = settings.model_copy(update={"file": change(settings.file)})
    return config.model_copy(update=update)


def rebase_paths(config: TrainConfig, config_dir: str | Path) -> TrainConfig:
    """Relative paths of `config` that exist relative to `config_dir` become paths from the
    current directory (see the module docstring)."""
    base = Path(config_dir)

    def rebase(value: str) -> str:
        if _is_name(value) or os.path.isabs(value) or base.resolve() == Path.cwd().resolve():
            return value
        candidate = base / value
        return os.path.normpath(candidate) if candidate.exists() else value

    return _map_paths(config, rebase)


def portable_config(config: TrainConfig, run_dir: str | Path) -> TrainConfig:
    """`config` as the run directory `run_dir` records it: cache paths as names, other paths
    relative to `run_dir`."""

    def portable(value: str) -> str:
        return portable_model_name(value, relative_to=run_dir)

    return _map_paths(config, portable)
