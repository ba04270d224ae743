"""The experiment spec (YAML): one start model, named arms, seeds, held-out sets.

    name: phase1-cpu
    start:                       # the shared start checkpoint of every arm
      model: micro               # 'embedded', 'tiny', 'micro', a checkpoint directory or a hub id
      warmstart: {steps: 300, batch_size: 16, learning_rate: 1e-3, irrelevant_rate: 0.3}
    base:                        # a `dca train` config (TrainConfig) minus model and warmstart
      reviewer: oracle
      problems: {synthetic: {count: 256, seed: 1, min_operations: 1, max_operations: 2}}
      grpo: {steps: 60, num_generations: 8, prompts_per_step: 2, temperature: 0.7}
    arms:
      grpo:         {overrides: {credit: {policy: uniform}}}
      dca-conserve: {overrides: {credit: {policy: conserve}}}
      edit-sft:     {method: sft, edit: edit}
      rft:          {method: sft, edit: rft}
    seeds: [0, 1, 2]
    eval:
      every: 20
      sets:
        - {name: in-distribution, problems: {synthetic: {count: 100, seed: 7000, min_operations: 1, max_operations: 2}}}
        - {name: gsm8k, problems: {gsm8k: test, limit: 50}}

An arm is either ``method: grpo`` (the base config with the arm's ``overrides`` merged in:
mappings merge key by key, anything else replaces) or ``method: sft``: the start model's
rollouts on the training problems (as many completions as a GRPO arm samples), reviewed by
the base config's reviewer(s), edited (``edit: edit``), kept unedited (``edit: rft``) or
randomly cut (``edit: random-drop``) by `dca.edit`, then fine-tuned with `dca.train.sft` for
as many optimizer steps as a GRPO arm takes. Both SFT arms of one seed share one rollout set.

A seed sets the run's `TrainConfig.seed` (TRL's data order and sampling) and the rollouts'
seed; every arm of one seed therefore sees its problems in the same order.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..domains.sources import load_problems
from ..errors import UserError, validation_problem
from ..files import read_yaml
from ..micro.conditions import length_limit
from ..train.config import ProblemsSettings, TrainConfig, WarmstartSettings
from ..train.micro import MicroSettings

_LIMITS: dict[tuple[str, str], int] = {}  # condition limits, by condition and training problems
ARM_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartSettings(_Strict):
    """The one start checkpoint every arm and seed begins from."""

    model: str = Field("embedded", description="'embedded', 'tiny' (a random test model), 'micro', a checkpoint directory or a hub id.")
    micro: MicroSettings = Field(MicroSettings(), description="model: micro: the micro Llama's architecture (dca.train.micro).")
    warmstart: WarmstartSettings | None = Field(
        None, description="SFT on gold CoTs (with irrelevant steps) before every arm; model: micro defaults to the micro recipe (dca.train.micro.MICRO_WARMSTART)."
    )
    measure: int = Field(32, ge=0, description="Problems of the first eval set on which the start model's greedy and sampled accuracy are measured (0: skip).")


class ArmSpec(_Strict):
    method: Literal["grpo", "sft"] = "grpo"
    overrides: dict[str, Any] = Field(default_factory=dict, description="grpo: settings merged into the base TrainConfig.")
    condition: Literal["padding-free", "padding-costs"] | None = Field(
        None, description="start.model micro: the completion length limit that makes padding free or costly (dca.micro.conditions)."
    )
    edit: Literal["edit", "rft", "random-drop"] = Field("edit", description="sft: which edit set the rollouts become.")
    edit_mode: Literal["drop", "bridge-template"] = "bridge-template"
    sft_learning_rate: float | None = Field(None, gt=0, description="sft: default the base config's GRPO learning rate x 10.")
    description: str = ""


class EvalSet(_Strict):
    name: str
    problems: ProblemsSettings


class EvalSettings(_Strict):
    every: int = Field(0, ge=0, description="Evaluate along training every N optimizer steps (0: only before and after).")
    curve_limit: int = Field(32, ge=1, description="Problems per set in the along-training evaluations.")
    sets: list[EvalSet] = Field(min_length=1)
    probes: list[Literal["early", "mistakes", "filler"]] = Field(default_factory=lambda: ["early"], description="Faithfulness probes on the final checkpoint.")
    probe_sets: list[str] | None = Field(None, description="The sets whose final traces are probed (default: all).")
    probe_limit: int | None = Field(None, ge=1, description="Probe at most the first N traces of each probed set (default: all); probes cost many forced answers per trace.")
    max_new_tokens: int = Field(128, ge=8)
    agreement_reviewers: list[str] = Field(
        default_factory=list, description="Two or more reviewers (oracle, reference, or names in the base reviewers_file) whose agreement on each arm's final CoTs is reported."
    )

    @model_validator(mode="after")
    def _unique(self):
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval set names repeat: {names}")
        for name in names:
            if not ARM_NAME.match(name):
                raise ValueError(f"eval set name {name!r}: use lower-case letters, digits, '-', '_' or '.'")
        unknown = [n for n in self.probe_sets or [] if n not in names]
        if unknown:
            raise ValueError(f"probe_sets: {unknown[0]!r} is not an eval set ({', '.join(names)})")
        if len(self.agreement_reviewers) == 1:
            raise ValueError("agreement_reviewers: name two or more reviewers, or none")
        return self


class ExperimentSpec(_Strict):
    name: str = "experiment"
    description: str = ""
    start: StartSettings = StartSettings()
    base: dict[str, Any] = Field(default_factory=dict, description="A TrainConfig without model and warmstart.")
    arms: dict[str, ArmSpec] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    baseline: str = Field("grpo", description="The arm every other arm is compared to (paired differences).")
    eval: EvalSettings
    keep_checkpoints: bool = Field(
        False, description="Keep each run's checkpoint/ and trainer/ after its final evaluation (nothing later reads them; 540 MB each for the embedded model)."
    )

    @model_validator(mode="after")
    def _check(self):
        for key in ("model", "warmstart", "seed"):
            if key in self.base:
                raise ValueError(f"base: {key!r} is set by the experiment (start.model, start.warmstart, seeds), not by the base config")
        if self.base.get("save") == "none":
            raise ValueError("base: save: none leaves no checkpoint for the final evaluation; the experiment drops checkpoints after it unless keep_checkpoints: true")
        for name in self.arms:
            if not ARM_NAME.match(name):
                raise ValueError(f"arm name {name!r}: use lower-case letters, digits, '-', '_' or '.'")
        if self.baseline not in self.arms:
            raise ValueError(f"baseline arm {self.baseline!r} is not among the arms {list(self.arms)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")
        base = self.base_config(0)
        for name, arm in self.arms.items():
            if arm.condition is not None and self.start.model != "micro":
                raise ValueError(f"arms.{name}: condition {arm.condition!r} is measured in micro tokens; it needs start.model: micro")
            if arm.method == "grpo":
                self.arm_config(name, 0)
            elif arm.overrides:
                raise ValueError(f"arms.{name}: an sft arm takes no overrides")
        if self.eval.agreement_reviewers:
            TrainConfig.model_validate({**base.model_dump(), "reviewer": self.eval.agreement_reviewers})
        return self

    def base_config(self, seed: int) -> TrainConfig:
        return _train_config({**self.base, "seed": seed}, "base")

    def arm_config(self, arm: str, seed: int, *, model: str = "embedded") -> TrainConfig:
        """The TrainConfig of one GRPO arm and seed, starting from `model`."""
        merged = deep_merge(self.base, self.arms[arm].overrides)
        condition = self.arms[arm].condition
        if condition is not None:
            merged = deep_merge(merged, {"grpo": {"max_completion_length": self._length_limit(condition)}})
        return _train_config({**merged, "model": model, "seed": seed}, f"arms.{arm}.overrides")

    def _length_limit(self, condition: str) -> int:
        key = (condition, repr(self.base.get("problems")))
        if key not in _LIMITS:
            _LIMITS[key] = length_limit(condition, load_problems(self.base_config(0).problems))
        return _LIMITS[key]

    def budget(self, arm: str) -> dict[str, Any]:
        """The compute an arm spends per seed: completions sampled, reviews, optimizer steps."""
        spec = self.arms[arm]
        config = self.arm_config(arm, 0) if spec.method == "grpo" else self.base_config(0)
        g = config.grpo
        completions = g.steps * g.prompts_per_step * g.num_generations
        reviews = completions * len(config.reviewer_names) if (spec.method == "grpo" or spec.edit != "rft") else 0
        return {
            "method": spec.method if spec.method == "grpo" else f"sft ({spec.edit})",
            "completions_sampled": completions,
            "reviews": reviews,
            "optimizer_steps": g.steps,
            "batch": g.prompts_per_step * g.num_generations,
        }


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` on top of `base`: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _train_config(data: dict[str, Any], where: str) -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{where}: {validation_problem(e)}") from None


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec; any problem becomes one `UserError` line."""
    path = Path(path)
    data = read_yaml(path, what="experiment spec") or {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return parse_spec(data, where=str(path))


def parse_spec(data: dict[str, Any], *, where: str = "spec") -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{where}: {validation_problem(e)} ({e.error_count()} problem(s) in all)") from e
