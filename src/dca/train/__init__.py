"""Training: the DCA-GRPO trainer (a narrow TRL subclass), its configs, the warm start and
the run loop that ties them to a run directory.

Names are imported lazily (PEP 562) so that ``import dca.train.config`` — which the torch-free
commands such as ``dca problems`` use — does not load torch, transformers or TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "TrainConfig": ".config",
    "load_train_config": ".config",
    "DCAGRPOConfig": ".grpo_config",
    "DCAGRPOTrainer": ".grpo_trainer",
    "outcome_reward": ".grpo_trainer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .config import TrainConfig, load_train_config
    from .grpo_config import DCAGRPOConfig
    from .grpo_trainer import DCAGRPOTrainer, outcome_reward


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
