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

from pathlib import Path

from ..model import portable_model_name
from .config import TrainConfig, _map_paths


def portable_config(config: TrainConfig, run_dir: str | Path) -> TrainConfig:
    """`config` as the run directory `run_dir` records it: cache paths as names, other paths
    relative to `run_dir`."""

    def portable(value: str) -> str:
        return portable_model_name(value, relative_to=run_dir)

    return _map_paths(config, portable)
