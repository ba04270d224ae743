"""Training: the DCA-GRPO trainer (a narrow TRL subclass), its configs, the warm start and
the run loop that ties them to a run directory."""

from .config import TrainConfig, load_train_config
from .grpo_trainer import DCAGRPOTrainer, outcome_reward

__all__ = ["DCAGRPOTrainer", "TrainConfig", "load_train_config", "outcome_reward"]
