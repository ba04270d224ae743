"""What a run keeps on disk: the final checkpoint in the precision asked for, or none, and the
bytes it wrote.

A 135M-parameter model is 540 MB in float32; a TRL checkpoint (``trl: {save_steps: N}``) adds
the optimizer state, twice that again. ``save: none`` keeps the run's records only (traces,
reviews, credits, metrics, evaluations); ``save_dtype: bfloat16`` or ``float16`` halves the
final checkpoint. Half precision rounds every weight to 8 (bf16) or 11 (fp16) significant
bits, so a weight change smaller than about 1/256 (bf16) of the weight is lost on saving: a
short run at a small learning rate may save a checkpoint that is the start model again. The
default stays float32. TRL's own checkpoints follow TRL's ``save_strategy`` / ``save_steps``
unchanged (resuming needs their full precision and optimizer state).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path


def save_final_checkpoint(trainer, model, tokenizer, folder: Path, *, save: str, dtype: str, writer: bool) -> bool:
    """Save the trained model and tokenizer to `folder` as the config says (``save``: final or
    none; ``dtype`` of the weights); True when a checkpoint was written. Call on every process."""
    if save == "none":
        return False
    if dtype == "float32":
        trainer.save_model(str(folder))  # writes on the main process only
    elif writer:
        import torch  # heavy: torch loads only when a model is saved

        # A half-precision copy (half the model's memory again): save_pretrained ignores the dtype of
        # a state_dict it is given, and the trained model stays float32 for the evaluation after.
        half = copy.deepcopy(trainer.accelerator.unwrap_model(trainer.model)).to(getattr(torch, dtype))
        half.save_pretrained(str(folder))
        del half
    if writer:
        tokenizer.save_pretrained(str(folder))
    return True


def bytes_written(folder: Path, *, leave_out: tuple[str, ...] = ("run.json", "summary.json", ".dca-lock")) -> int:
    """Bytes of every file under `folder` (links not followed) but the top-level `leave_out`
    (the status files, written after the count, and the lock)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink() and not (Path(root) == Path(folder) and name in leave_out):
                total += path.stat().st_size
    return total
