"""What a run needs, checked when its config is read: before a model loads or a run directory
exists, so that a mistake costs a second and one line (exit 2), not a loaded model, a traceback
and a failed run directory.

Checked here (trackers are checked with the config itself, in
`dca.train.grpo_config.check_trl_options`):

- the ``trl:`` options this machine cannot run: vLLM generation without vLLM, fp16 without a
  GPU, bf16 on a GPU without it (`dca.train.grpo_config.check_machine_options`; also checked
  by `dca.train.config.load_train_config`);
- each reviewer supports the domains of the training problems (the registry's
  `dca.review.registry.SUPPORTED_DOMAINS`: the oracle needs a domain's known structure, the
  reference reviewer GSM8K's annotated solution);
- each reviewer's local model (``hf``, and ``counterfactual`` / ``persona`` with a ``model``)
  is on this machine: 'embedded', a checkpoint directory, or in the Hugging Face cache.

And a run directory whose run failed before its first step (`failed_before_first_step`) holds
nothing worth keeping: a plain rerun replaces it rather than asking for ``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..domains import domain_of
from ..records import Problem
from ..review import builtin_spec, load_reviewers
from ..review.registry import check_domains, check_local_models
from .config import TrainConfig, check_machine

#: run.json statuses of a run that stopped with an error (or a signal).
STOPPED = ("failed", "terminated", "interrupted")


def reviewer_specs(config: TrainConfig) -> list:
    """The `ReviewerSpec` of every reviewer `config.reviewer` names."""
    if config.reviewers_file is None:
        return [builtin_spec(name) for name in config.reviewer_names]
    return load_reviewers(config.reviewers_file, only=config.reviewer_names)


def check_run_requirements(config: TrainConfig, problems: list[Problem]) -> None:
    """A `UserError` (one line) when this machine cannot run the ``trl:`` options, a reviewer
    cannot review the training problems' domains, or its model is not on this machine."""
    check_machine(config, where="trl settings")
    specs = reviewer_specs(config)
    where = f"problems {config.problems.file}" if config.problems.file else "the training problems"
    check_domains(specs, {domain_of(p).name for p in problems}, where=where)
    check_local_models(specs)


def failed_before_first_step(out: str | Path) -> str | None:
    """The error of the run in `out` when it stopped before recording its first step (its
    ``run.json`` says failed / terminated / interrupted, and it holds no metrics, no traces, no
    TRL checkpoint and no resume); None otherwise. Such a directory may be replaced by a rerun."""
    out = Path(out)
    try:
        status = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("status") not in STOPPED or status.get("resumed"):
        return None
    for name in ("metrics.jsonl", "traces.jsonl", "summary.json"):
        path = out / name
        if path.exists() and path.stat().st_size > 0:
            return None
    if any((out / "trainer").glob("checkpoint-*")):
        return None
    return str(status.get("error") or status["status"])
