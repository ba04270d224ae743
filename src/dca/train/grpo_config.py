"""`DCAGRPOConfig`: TRL's `GRPOConfig` plus the checks that per-token advantages need.

A run YAML's ``trl:`` mapping may set any `trl.GRPOConfig` field (vLLM generation, bf16,
gradient accumulation, checkpointing, ``report_to`` ...); `check_trl_options` validates the
names against the dataclass's real field list and the values against the field types and
the choices TRL 1.16's trainer accepts, and `build_grpo_config` merges them with the run's
own settings into a `DCAGRPOConfig`.

Where DCA departs from TRL: `DCAGRPOTrainer` hands TRL's loss a ``(batch, tokens)``
advantage tensor. TRL's options were read for that shape (TRL 1.16 ``_compute_loss``):

- ``off_policy_mask_threshold`` (DeepSeek-V3.2's off-policy sequence mask), the ``sapo`` loss
  (sign-dependent temperatures) and the ``vespo`` loss (sign-dependent gamma weights) test
  the sign of ``advantages``; with a ``(B, T)`` tensor they apply the paper's sequence rule
  to each token with that token's advantage, and a token's gradient depends on its own
  advantage only. `tests/test_grpo_config.py` shows both against TRL's own code, so they
  are allowed.
- ``importance_sampling_level="sequence"`` (GSPO) is refused: one importance ratio per
  sequence is differentiated through the mean of all the sequence's log-probabilities, so
  every token's gradient is weighted by the sequence's summed advantage and the reviewers'
  placement of credit is erased (the same test shows it).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from ..credit import CreditConfig
from .config import GRPO_SETTINGS_FIELDS, LOSS_TYPES

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


@dataclass
class DCAGRPOConfig(GRPOConfig):
    """`trl.GRPOConfig` whose values are checked up front, including the per-token-advantage
    checks of `check_per_token_options` (TRL would fail late, or train on erased credit), plus
    the credit settings `DCAGRPOTrainer` places advantages with."""

    credit: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Credit settings: the fields of dca.credit.CreditConfig (policy and its options; see docs/credit-policies.md)."},
    )

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {[a for a in allowed if isinstance(a, str)]}")
        check_per_token_options(self)
        self.credit_config  # noqa: B018 -- checks the credit settings now, not at the first batch
        super().__post_init__()

    @property
    def credit_config(self) -> CreditConfig:
        """The credit settings as a `CreditConfig` (kept as a plain mapping so TRL can log it)."""
        try:
            return CreditConfig(**self.credit)
        except TypeError as e:
            raise ValueError(f"credit: {e}; the settings are dca.credit.CreditConfig's fields") from None


def grpo_config_fields() -> dict[str, dataclasses.Field]:
    """GRPOConfig's settable fields by name (the installed TRL's, not a copied list)."""
    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


def check_trl_options(options: dict[str, Any]) -> None:
    """Validate a ``trl:`` mapping: names against GRPOConfig's fields, values against their
    types and TRL's choices. Raises ValueError with one line naming the first bad option."""
    from pydantic import TypeAdapter, ValidationError

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
    import importlib.util

    import torch

    if options.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise ValueError("trl.use_vllm: vLLM is not installed (pip install vllm, on a CUDA machine); remove use_vllm to generate with transformers")
    cuda = torch.cuda.is_available()
    if options.get("fp16") and not (cuda or _has_other_accelerator()):
        raise ValueError("trl.fp16: fp16 mixed precision needs a GPU and this machine has none; remove fp16 (the CPU trains in fp32)")
    if options.get("bf16") and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError("trl.bf16: this GPU does not support bf16; use trl: {fp16: true} instead")


def _has_other_accelerator() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return bool((mps is not None and mps.is_available()) or (xpu is not None and xpu.is_available()))


def _check_trackers(report_to: str | list[str] | None) -> None:
    """Each tracker named in ``report_to`` must be one transformers knows and is installed."""
    from transformers.integrations import get_available_reporting_integrations
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


def build_grpo_config(
    *, grpo: Any, trl_options: dict[str, Any], output_dir: str, seed: int, defaults: dict[str, Any] | None = None,
    credit: CreditConfig | None = None,
) -> DCAGRPOConfig:
    """The run's `DCAGRPOConfig`: `grpo` (a `GRPOSettings`) and DCA's defaults, then the ``trl:``
    options on top (they win, unchanged). `defaults` are device settings and the like; `credit`
    the run's credit settings (default: `CreditConfig()`).

    A ``save_steps`` without a ``save_strategy`` turns checkpointing on (``"steps"``): DCA's own
    default is not to checkpoint."""
    check_trl_options(trl_options)
    kwargs: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": grpo.num_generations * grpo.prompts_per_step,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "seed": seed,
        "credit": dataclasses.asdict(credit or CreditConfig()),
        **(defaults or {}),
    }
    kwargs.update({field: getattr(grpo, setting) for setting, field in GRPO_SETTINGS_FIELDS.items() if setting != "prompts_per_step"})
    kwargs.update(trl_options)
    if "save_steps" in trl_options and "save_strategy" not in trl_options:
        kwargs["save_strategy"] = "steps"
    return DCAGRPOConfig(**kwargs)
