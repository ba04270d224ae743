"""Warm start: a short SFT (TRL's SFTTrainer) on rendered gold CoTs of synthetic problems
(or of any domain with a gold-CoT renderer, e.g. ``problems: {name: logic, count: 320}``).

Why: the raw embedded model solves ~5 % of easy word problems and rarely uses the answer
format, so almost every GRPO group has zero reward variance and zero advantage. A few dozen
SFT steps on correct CoTs teach the format and lift accuracy enough for groups to disagree.
The gold CoTs deliberately keep a share of irrelevant steps (`irrelevant_rate`), so the
warm-started model still writes padding that DCA's credit can learn to remove.

The result is cached under ``<cache dir>/warmstart/<hash>``, the hash covering the base model
and every setting, so a second run with the same settings loads it in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Callable

from ..files import publish_dir, scratch_dir
from ..model import MODEL_NAMES, portable_model_name, resolve_model_path, warmstart_cache_dir
from ..domains import domain_of
from ..domains.sources import DomainSettings, ProblemsSettings, domain_problems, load_problems
from ..domains import chat_messages
from ..problems.gold import PaddingRates, render_gold_cot
from .config import WarmstartSettings
from .sft import SFTSettings, loss_logger, sft_trainer


def warmstart_key(base_model: str, settings: WarmstartSettings) -> str:
    """A hash of everything that changes the warm-started weights."""
    identity = portable_model_name(base_model)  # the embedded model by its name, however it is given
    path = resolve_model_path(base_model)
    if os.path.isdir(path) and identity not in MODEL_NAMES:
        config_file = Path(path) / "config.json"
        identity = f"{os.path.abspath(path)}@{config_file.stat().st_mtime_ns}"
    payload = json.dumps({"model": identity, "settings": settings.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def gold_dataset_rows(settings: WarmstartSettings) -> list[dict]:
    """Prompt/completion pairs in TRL's conversational format: gold CoTs of the problems'
    domain (synthetic arithmetic, or any domain with a gold-CoT renderer)."""
    p = settings.problems
    if isinstance(p, DomainSettings):
        problems = domain_problems(p, default_count=settings.steps * settings.batch_size)
    else:
        problems = load_problems(ProblemsSettings(synthetic=p))
    rng = random.Random(p.seed)
    if settings.padding is not None:  # synthetic problems, padding by kind
        rates = PaddingRates(**settings.padding.model_dump())
        render = lambda problem: render_gold_cot(problem, rng=rng, padding=rates)  # noqa: E731
    else:
        render = lambda problem: domain_of(problem).gold_cot(problem, settings.irrelevant_rate, rng)  # noqa: E731
    return [
        {"prompt": chat_messages(problem), "completion": [{"role": "assistant", "content": render(problem).text}]}
        for problem in problems
    ]


def warmstart(base_model: str, settings: WarmstartSettings, *, log: Callable[[str], None] = print) -> Path:
    """Return the directory of the warm-started checkpoint, training it if not cached."""
    target = warmstart_cache_dir() / warmstart_key(base_model, settings)
    if (target / "config.json").exists():
        log(f"warm start: cached at {target}")
        return target

    log(f"warm start: {settings.steps} SFT steps on gold CoTs (cached afterwards at {target})")
    progress = loss_logger("warm start", settings.steps, log, every=max(1, settings.steps // 10))

    with scratch_dir(target) as scratch:
        sft = SFTSettings(
            max_steps=settings.steps,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            seed=settings.problems.seed,
        )
        trainer = sft_trainer(gold_dataset_rows(settings), base_model, scratch / "trainer", sft, callbacks=[progress])
        trainer.train()
        shutil.rmtree(scratch / "trainer", ignore_errors=True)
        # Under `accelerate launch` every process trained its share; the main process saves.
        if trainer.accelerator.is_main_process:
            trainer.model.save_pretrained(scratch)
            trainer.processing_class.save_pretrained(scratch)
            (scratch / "warmstart.json").write_text(
                json.dumps({"base_model": base_model, "settings": settings.model_dump(mode="json")}, indent=2)
            )
            publish_dir(scratch, target)  # the checkpoint appears whole or not at all
        trainer.accelerator.wait_for_everyone()
    return target
