"""SFT on edited chains of thought (`dca sft`): TRL's SFTTrainer on an edit set.

An edit set (`dca edit`, records `dca.edit.Edit`) becomes a conversational
prompt-completion dataset: the problem's chat prompt, and the edited completion as the
assistant turn. The loss is on completion tokens only (``completion_only_loss``: TRL masks
the prompt's labels with -100). The arms of an experiment differ only in the edit set:
``edit`` (reviewer-guided edits), ``rft`` (the unedited solved traces: rejection-sampling
fine-tuning / STaR) and ``random-drop`` (as many units dropped at random).

With ``lora`` the model is wrapped by PEFT's LoRA (all linear layers) and the adapter is
merged back after training, so the output directory is an ordinary checkpoint that
`dca rollout --model DIR`, `dca train` and `dca sft` load like any other. The directory
also holds ``sft.json``: the settings, the edit set's arms and figures, and the logged losses.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..edit import edit_figures
from ..files import publish_dir, scratch_dir
from ..records import Edit
from ..model import load_model, trainer_device_arguments

__all__ = ["SFTSettings", "build_sft_trainer", "loss_logger", "run_sft", "sft_rows"]


@dataclass(kw_only=True)
class SFTSettings:
    """Training settings of `dca sft`."""

    max_steps: int = 40
    """Optimizer steps."""
    batch_size: int = 8
    learning_rate: float = 1e-4
    max_length: int = 1024
    """Longest prompt + completion in tokens; longer rows are truncated."""
    lora: bool = False
    """Train a LoRA adapter (PEFT) instead of all weights; merged into the saved checkpoint."""
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("max_steps and batch_size must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive")
        if self.max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")
        if self.lora and (self.lora_rank < 1 or self.lora_alpha < 1 or not 0 <= self.lora_dropout < 1):
            raise ValueError("LoRA needs lora_rank >= 1, lora_alpha >= 1 and 0 <= lora_dropout < 1")


def sft_rows(edits: list[Edit]) -> list[dict]:
    """Prompt-completion rows in TRL's conversational format, one per trained-on edit."""
    rows = [
        {"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]}
        for e in edits
        if e.status != "skipped"
    ]
    if not rows:
        raise ValueError("the edit set holds no trained-on edit (every trace was skipped: were any traces solved?)")
    return rows


def build_sft_trainer(edits: list[Edit], model: str, out_dir: str | os.PathLike, settings: SFTSettings, *, callbacks=()):
    """An `SFTTrainer` on the edit set, ready to `train()` (tests read its collated batches)."""
    return sft_trainer(sft_rows(edits), model, out_dir, settings, callbacks=callbacks)


def sft_trainer(rows: list[dict], model: str, out_dir: str | os.PathLike, settings: SFTSettings, *, callbacks=()):
    """An `SFTTrainer` with completion-only loss on prompt-completion rows in TRL's
    conversational format (edited CoTs here, gold CoTs in the warm start)."""
    from datasets import Dataset  # heavy: torch, transformers, TRL and datasets load only when SFT runs
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_list(rows)
    lm, tokenizer = load_model(model)
    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
            target_modules="all-linear", task_type="CAUSAL_LM",
        )  # fmt: skip
    args = SFTConfig(
        output_dir=str(out_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, settings.max_steps // 10) if settings.max_steps > 2 else 0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=settings.seed,
        max_length=settings.max_length,
        completion_only_loss=True,
        **trainer_device_arguments(),
    )
    trainer = SFTTrainer(
        model=lm, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks)
    )
    trainer.remove_callback(PrinterCallback)  # callers print their own progress lines
    return trainer


def loss_logger(label: str, max_steps: int, log: Callable[[str], None], losses: list[dict] | None = None, every: int = 1):
    """A TrainerCallback that prints ``  LABEL step S/MAX  loss L`` every `every` steps and, when
    `losses` is given, appends ``{"step", "loss"}`` to it at every logged step."""
    from transformers import TrainerCallback  # heavy: transformers loads only when SFT runs

    class _LossLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            loss = float(logs["loss"])
            if losses is not None:
                losses.append({"step": state.global_step, "loss": loss})
            if state.global_step % every == 0:
                log(f"  {label} step {state.global_step}/{max_steps}  loss {loss:.3f}")

    return _LossLogger()


def run_sft(
    edits: list[Edit],
    model: str,
    out: str | os.PathLike,
    settings: SFTSettings,
    *,
    edits_path: str = "",
    log: Callable[[str], None] = print,
    callbacks=(),
) -> dict:
    """Fine-tune `model` on the edit set and save the checkpoint to `out` (written whole or
    not at all); returns the summary also written to ``out/sft.json``."""
    out = Path(out)
    losses: list[dict] = []
    progress = loss_logger("sft", settings.max_steps, log, losses)

    with scratch_dir(out) as scratch:
        trainer = build_sft_trainer(edits, model, scratch / "trainer", settings, callbacks=[progress, *callbacks])
        rows = len(trainer.train_dataset)
        arms = sorted({e.arm for e in edits})
        log(f"sft: {settings.max_steps} steps on {rows} {'/'.join(arms)} completions ({'LoRA' if settings.lora else 'all weights'})")
        trainer.train()
        trained = trainer.model
        if settings.lora:
            trained = trained.merge_and_unload()
        shutil.rmtree(scratch / "trainer", ignore_errors=True)
        trained.save_pretrained(scratch)
        trainer.processing_class.save_pretrained(scratch)
        summary = {
            "base_model": model,
            "edits": edits_path,
            "arms": arms,
            "rows": rows,
            "settings": asdict(settings),
            "edit_figures": edit_figures(edits),
            "losses": losses,
        }
        (scratch / "sft.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        publish_dir(scratch, out)
    return summary
