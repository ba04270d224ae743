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
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from ..credit import CreditConfig
from .trl_options import CHOICES, GRPO_SETTINGS_FIELDS, check_per_token_options, check_trl_options

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
