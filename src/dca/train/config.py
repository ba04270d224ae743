"""Configuration of a DCA training run, read from YAML (`dca train --config run.yaml`).

Config files are untrusted input, so they are validated with pydantic (unknown keys are an
error that names the key). Every run directory holds the exact config that produced it, as
``config.yaml``. Example::

    model: embedded            # 'embedded', a checkpoint directory or a hub id
    warmstart: {steps: 40}     # optional: SFT on gold CoTs first (cached)
    reviewer: oracle
    credit: {policy: conserve}
    problems: {synthetic: {count: 64, seed: 1, min_operations: 1, max_operations: 2}}
    eval_problems: {synthetic: {count: 32, seed: 2, min_operations: 1, max_operations: 2}}
    grpo: {steps: 10, num_generations: 8, max_completion_length: 96}
    trl: {gradient_accumulation_steps: 2, save_steps: 5, report_to: tensorboard}   # any trl.GRPOConfig field

``grpo:`` holds the settings DCA gives its own defaults; ``trl:`` passes any other
`trl.GRPOConfig` field through unchanged (checked against TRL's field list when the config is
read; see `dca.train.grpo_config`). A field may be set in one of them, not both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..consensus import check_rule
from ..credit import BLAME_CONTRIBUTIONS, DEFAULT_MAX_WEIGHT, POLICIES, CreditConfig
from ..domains import DOMAINS
from ..domains.sources import DomainSettings, ProblemsSettings, SyntheticSettings
from ..errors import UserError, validation_problem
from ..files import read_yaml
from ..model import MODEL_NAMES, WARMSTART_PREFIX
from ..records import CONTRIBUTIONS, USEFUL_CONTRIBUTIONS
from .trl_options import GRPO_SETTINGS_FIELDS, LOSS_TYPES, check_machine_options, check_trl_options


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaddingSettings(_Strict):
    """Per-kind padding of synthetic gold CoTs (`dca.problems.gold.PaddingRates`)."""

    restatement: float = Field(0.0, ge=0, le=1, description="Per slot between useful steps: restate a distractor fact.")
    off_path: float = Field(0.0, ge=0, le=1, description="Per slot between useful steps: compute with distractor numbers.")
    check: float = Field(0.0, ge=0, le=1, description="Per computation: repeat its equation ('Check: 3 + 4 = 7.').")


class WarmstartSettings(_Strict):
    """A short SFT on rendered gold CoTs before RL (see `dca.train.warmstart`)."""

    steps: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    irrelevant_rate: float = Field(0.3, ge=0, le=1, description="Share of irrelevant steps mixed into gold CoTs.")
    padding: PaddingSettings | None = Field(
        None, description="Synthetic problems: per-kind padding rates (restatement, off_path, check) that replace irrelevant_rate."
    )
    problems: SyntheticSettings | DomainSettings = Field(
        SyntheticSettings(count=320, seed=1000),
        description="Problems whose gold CoTs are trained on: synthetic arithmetic, or {name: DOMAIN, count, seed, options} "
        "for any domain with a gold-CoT renderer.",
    )

    @model_validator(mode="after")
    def _has_gold(self):
        if isinstance(self.problems, DomainSettings):
            if DOMAINS[self.problems.name].gold_cot is None or DOMAINS[self.problems.name].generate is None:
                with_gold = [d.name for d in DOMAINS.values() if d.gold_cot is not None and d.generate is not None]
                raise ValueError(f"domain {self.problems.name!r} has no gold-CoT renderer; warm starts use {', '.join(with_gold)}")
            if self.padding is not None:
                raise ValueError("padding (per-kind rates) applies to synthetic problems; use irrelevant_rate for other domains")
        return self


class CreditSettings(_Strict):
    """How reviews become per-token advantages (see `dca.credit.policies`, docs/credit-policies.md)."""

    policy: str = Field("conserve", description="A registered credit policy (dca.credit.POLICIES).")
    useful_contributions: list[str] = Field(default_factory=lambda: list(USEFUL_CONTRIBUTIONS))
    blame_contributions: list[str] = Field(
        default_factory=lambda: list(BLAME_CONTRIBUTIONS),
        description="signed policies: labels whose units carry a negative advantage (capo: the units it penalizes).",
    )
    blame_dependents: bool = Field(False, description="signed policies: also blame steps depending on a blamed step.")
    negative: Literal["blame", "uniform", "zero"] = Field(
        "blame", description="signed policies: a negative advantage goes to blamed units, every token, or none."
    )
    max_weight: float | None = Field(
        DEFAULT_MAX_WEIGHT, ge=1, description="signed policies: cap on a token's weight, in multiples of the uniform weight (null: uncapped)."
    )
    capo_penalty: float = Field(1.0, ge=0, description="capo: subtracted from the advantage of blamed units' tokens.")
    oar_strength: float = Field(0.5, ge=0, lt=1, description="oar: useful tokens weigh 1+s, others 1-s, normalized to the length.")
    seed: int = 0
    disputed: Literal["mask", "uniform"] = Field(
        "mask", description="What a consensus's disputed units receive: no credit (mask) or the plain GRPO advantage (uniform)."
    )

    @field_validator("policy")
    @classmethod
    def _registered(cls, policy: str) -> str:
        if policy not in POLICIES:
            raise ValueError(f"unknown credit policy {policy!r}; choose one of {', '.join(POLICIES)}")
        return policy

    @model_validator(mode="after")
    def _known_labels(self):
        unknown = (set(self.useful_contributions) | set(self.blame_contributions)) - set(CONTRIBUTIONS)
        if unknown:
            raise ValueError(f"unknown contributions {sorted(unknown)}; choose from {list(CONTRIBUTIONS)}")
        both = set(self.useful_contributions) & set(self.blame_contributions)
        if both:
            raise ValueError(f"contributions {sorted(both)} are both useful and blamed")
        return self

    def to_credit_config(self) -> CreditConfig:
        return CreditConfig(**{**self.model_dump(), "useful_contributions": tuple(self.useful_contributions), "blame_contributions": tuple(self.blame_contributions)})


class LengthPenaltySettings(_Strict):
    """The reviewer-free length-penalty control: a length-aware reward among correct completions
    (see `dca.train.length_reward`). It changes the reward, not the credit."""

    strength: float = Field(0.5, gt=0, le=1, description="A correct completion's reward falls from 1 to 1 - strength from the shortest correct completion of its group to the longest.")


class GRPOSettings(_Strict):
    """The `trl.GRPOConfig` settings DCA gives its own defaults; any other field goes in the
    run's ``trl:`` mapping. ``prompts_per_step`` is per process."""

    steps: int = Field(10, ge=1, description="Optimizer steps.")
    learning_rate: float = Field(5e-6, gt=0)
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the GRPO group).")
    prompts_per_step: int = Field(
        1, ge=1, description="Distinct prompts per micro-batch; an optimizer step samples prompts_per_step x trl.gradient_accumulation_steps of them."
    )
    max_completion_length: int = Field(96, ge=8)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient (TRL's default 0 drops the reference model).")
    loss_type: Literal[LOSS_TYPES] = Field("dapo", description="Any loss_type TRL 1.16's GRPO loss implements.")
    scale_rewards: Literal["group", "batch", "none"] = "group"


class TrainConfig(_Strict):
    model: str = Field("embedded", description="'embedded', a checkpoint directory or a hub id.")
    warmstart: WarmstartSettings | None = None
    reviewer: str | list[str] = Field(
        "oracle",
        description="'oracle', 'reference', or the name of a reviewer declared in reviewers_file (any "
        "backend); a list of names trains on their consensus.",
    )
    reviewers_file: str | None = Field(None, description="A reviewers YAML file (see dca.review.config).")
    consensus_rule: str = Field("majority", description="With several reviewers: unanimous, majority or at-least-M.")
    credit: CreditSettings = CreditSettings()
    problems: ProblemsSettings = ProblemsSettings(synthetic=SyntheticSettings(count=64, seed=1))
    eval_problems: ProblemsSettings | None = None
    grpo: GRPOSettings = GRPOSettings()
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other trl.GRPOConfig field, passed through unchanged (e.g. use_vllm, bf16, "
        "gradient_accumulation_steps, save_steps, report_to).",
    )
    seed: int = 0
    save: Literal["final", "none"] = Field(
        "final", description="final: the trained model in checkpoint/; none: the run's records only (TRL's own checkpoints follow trl.save_steps)."
    )
    save_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Precision of the saved checkpoint: half precision halves its size but loses weight changes below ~1/256 of a weight (see dca.train.saving)."
    )
    reward: Literal["verifier", "judge"] = Field(
        "verifier",
        description="verifier: each domain's answer checker; judge: open-ended tasks are scored by the LLM judge named by `judge`.",
    )
    judge: str | None = Field(None, description="With reward: judge, the reviewer of reviewers_file (an LLM backend) that judges responses.")
    judge_pass_score: int = Field(7, ge=0, le=10, description="Judge scores (0-10) at or above this count as correct.")
    length_penalty: LengthPenaltySettings | None = Field(
        None, description="The reviewer-free control: correct completions' reward falls with their length within the group (dca.train.length_reward)."
    )

    @field_validator("trl")
    @classmethod
    def _trl_fields(cls, options: dict[str, Any]) -> dict[str, Any]:
        if options:  # imports TRL (and torch) only for a config that uses the passthrough
            check_trl_options(options)
        return options

    @model_validator(mode="after")
    def _one_home_per_setting(self):
        from_grpo = {GRPO_SETTINGS_FIELDS[name]: name for name in self.grpo.model_fields_set}
        for name in self.trl:
            if name in from_grpo:
                raise ValueError(f"trl.{name} is also set as grpo.{from_grpo[name]}; set it in one place")
        return self

    @model_validator(mode="after")
    def _reviewer_known(self):
        names = self.reviewer_names
        if not names:
            raise ValueError("reviewer: name at least one reviewer")
        if len(set(names)) != len(names):
            raise ValueError(f"reviewer: each reviewer may be named once (got {names})")
        from ..review.registry import builtin_spec  # start-up: the reviewer registry loads only when a config names reviewers

        unknown = [n for n in names if builtin_spec(n) is None]
        if self.reviewers_file is None and unknown:
            raise ValueError(
                f"reviewer {unknown[0]!r} needs settings (or is unknown): declare it in a reviewers YAML file "
                "and give reviewers_file (built in: oracle, reference, counterfactual, oracle-flip-R with R in [0, 1], oracle-random)"
            )
        check_rule(self.consensus_rule)
        if self.reward == "judge" and (self.judge is None or self.reviewers_file is None):
            raise ValueError("reward: judge needs judge: NAME, a reviewer declared in reviewers_file")
        if self.reward != "judge" and self.judge is not None:
            raise ValueError("judge is set but reward is not 'judge'; set reward: judge")
        return self

    @property
    def reviewer_names(self) -> list[str]:
        return [self.reviewer] if isinstance(self.reviewer, str) else list(self.reviewer)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML config; any problem becomes one `UserError` line."""
    path = Path(path)
    data = read_yaml(path, what="config") or {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{path}: {validation_problem(e)} ({e.error_count()} problem(s) in all)") from e
    check_machine(config, where=str(path))
    return rebase_paths(config, path.parent)


def check_machine(config: TrainConfig, *, where: str) -> None:
    """A `UserError` when this machine cannot run the config's ``trl:`` options (vLLM, fp16, bf16)."""
    if config.trl:  # imports torch only for a config that uses the passthrough
        try:
            check_machine_options(config.trl)
        except ValueError as e:
            raise UserError(f"{where}: {e}") from e


def _is_name(value: str) -> bool:
    return value in MODEL_NAMES or value.startswith(WARMSTART_PREFIX)


def _map_paths(config: TrainConfig, change: Callable[[str], str]) -> TrainConfig:
    """`config` with `change` applied to every path it holds (names and hub ids included for
    ``model``: `change` leaves what is not a path alone)."""
    update: dict = {"model": change(config.model)}
    if config.reviewers_file is not None:
        update["reviewers_file"] = change(config.reviewers_file)
    for key in ("problems", "eval_problems"):
        settings = getattr(config, key)
        if settings is not None and settings.file is not None:
            update[key] = settings.model_copy(update={"file": change(settings.file)})
    return config.model_copy(update=update)


def rebase_paths(config: TrainConfig, config_dir: str | Path) -> TrainConfig:
    """Relative paths of `config` that exist relative to `config_dir` become paths from the
    current directory (see the module docstring)."""
    base = Path(config_dir)

    def rebase(value: str) -> str:
        if _is_name(value) or os.path.isabs(value) or base.resolve() == Path.cwd().resolve():
            return value
        candidate = base / value
        return os.path.normpath(candidate) if candidate.exists() else value

    return _map_paths(config, rebase)
