"""The run YAML's ``trl:`` options, checked when the config is read: names against the installed
TRL's `GRPOConfig` fields, values against their types and the choices TRL's trainer accepts
(`check_trl_options`), what this machine can run (`check_machine_options`), and the options that
would erase per-token credit (`check_per_token_options`; why: `dca.train.grpo_config`). TRL,
transformers and torch are imported inside the checks only: reading a config stays torch-free
(`tests/test_imports.py`)."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError

#: `loss_type` values TRL 1.16's `GRPOTrainer._compute_loss` implements.
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo")

#: The `grpo:` settings and the trl.GRPOConfig field each one sets.
GRPO_SETTINGS_FIELDS = {
    "steps": "max_steps",
    "learning_rate": "learning_rate",
    "num_generations": "num_generations",
    "prompts_per_step": "per_device_train_batch_size",
    "max_completion_length": "max_completion_length",
    "temperature": "temperature",
    "beta": "beta",
    "loss_type": "loss_type",
    "scale_rewards": "scale_rewards",
}

#: String choices TRL checks only deep inside training (or not at all); checked up front here.
CHOICES: dict[str, tuple] = {
    "loss_type": LOSS_TYPES,
    "importance_sampling_level": ("token", "sequence"),
    "scale_rewards": ("group", "batch", "none", True, False),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "vllm_mode": ("server", "colocate"),
    "vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
}

#: GRPOConfig fields a DCA run sets from its own settings; each has one home in the run YAML.
MANAGED: dict[str, str] = {
    "output_dir": "the run directory (--out) holds the trainer's files",
    "max_steps": "set grpo.steps",
    "per_device_train_batch_size": "set grpo.prompts_per_step (the batch is prompts_per_step x num_generations)",
    "seed": "set the top-level seed",
    "resume_from_checkpoint": "resume with `dca train --resume --out DIR`",
}

def check_per_token_options(args: Any, *, prefix: str = "") -> None:
    """Refuse GRPOConfig options whose TRL code breaks per-token advantages (see module doc)."""
    if getattr(args, "importance_sampling_level", "token") == "sequence":
        raise ValueError(
            f"{prefix}importance_sampling_level='sequence' (GSPO) is refused: its single per-sequence ratio spreads each "
            "token's advantage over the whole sequence and erases DCA's per-token credit; use 'token'"
        )


def grpo_config_fields() -> dict[str, dataclasses.Field]:
    """GRPOConfig's settable fields by name (the installed TRL's, not a copied list)."""
    from trl import GRPOConfig  # heavy: TRL loads only when a trl: mapping is checked

    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


def check_trl_options(options: dict[str, Any]) -> None:
    """Validate a ``trl:`` mapping: names against GRPOConfig's fields, values against their
    types and TRL's choices. Raises ValueError with one line naming the first bad option."""
    from trl import GRPOConfig  # heavy: TRL loads only when a trl: mapping is checked

    fields = grpo_config_fields()
    hints = typing.get_type_hints(GRPOConfig)
    for name, value in options.items():
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"trl.{name} is not a trl.GRPOConfig field{hint}")
        if name in MANAGED:
            raise ValueError(f"trl.{name} is managed by DCA: {MANAGED[name]}")
        if name in CHOICES:
            if value not in CHOICES[name]:
                shown = [a for a in CHOICES[name] if isinstance(a, str)]
                raise ValueError(f"trl.{name}: {value!r} is not one of {shown}")
            continue
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as e:
            raise ValueError(f"trl.{name}: {value!r} is not a valid {_type_name(hints[name])} ({e.errors()[0]['msg']})") from None
    if options.get("eval_strategy", "no") != "no" or options.get("do_eval"):
        raise ValueError("trl.eval_strategy / trl.do_eval: a DCA run has no TRL eval dataset; evaluate with eval_problems:")
    if "report_to" in options:
        _check_trackers(options["report_to"])
    check_per_token_options(_Options(options), prefix="trl.")


def check_machine_options(options: dict[str, Any]) -> None:
    """Options this machine cannot run (TRL would fail after the model loaded): vLLM generation
    without vLLM, fp16 without a GPU, bf16 on a GPU without it; bf16 on a CPU is allowed
    (torch's CPU autocast runs it). Checked apart from `check_trl_options`, on the machine that
    runs the config (`dca.train.config.load_train_config`, `dca.train.preflight`): a GPU config
    is still a valid config on a laptop."""
    import torch  # heavy: torch loads only when machine options are checked

    if options.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise ValueError("trl.use_vllm: vLLM is not installed (pip install vllm, on a CUDA machine); remove use_vllm to generate with transformers")
    cuda = torch.cuda.is_available()
    if options.get("fp16") and not (cuda or _has_other_accelerator()):
        raise ValueError("trl.fp16: fp16 mixed precision needs a GPU and this machine has none; remove fp16 (the CPU trains in fp32)")
    if options.get("bf16") and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError("trl.bf16: this GPU does not support bf16; use trl: {fp16: true} instead")


def _has_other_accelerator() -> bool:
    import torch  # heavy: torch loads only when machine options are checked

    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return bool((mps is not None and mps.is_available()) or (xpu is not None and xpu.is_available()))


def _check_trackers(report_to: str | list[str] | None) -> None:
    """Each tracker named in ``report_to`` must be one transformers knows and is installed."""
    from transformers.integrations import get_available_reporting_integrations  # heavy: transformers loads only when report_to is checked
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    installed = get_available_reporting_integrations()
    for name in names:
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise ValueError(f"trl.report_to: {name!r} is not a tracker transformers knows ({', '.join(INTEGRATION_TO_CALLBACK)})")
        if name not in installed:
            extra = " (pip install 'deliberative-credit[tracking]')" if name == "tensorboard" else ""
            raise ValueError(f"trl.report_to: {name} is not installed{extra}")


class _Options:
    def __init__(self, options: dict[str, Any]):
        self.__dict__.update(options)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
