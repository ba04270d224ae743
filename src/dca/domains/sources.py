"""Problem sources, in one place: problems files, GSM8K splits, seeded generators of any
domain, and the named evaluation sets. The CLI (`dca problems`), training configs
(``problems:`` / ``eval_problems:``), the warm start and `dca eval --sets` all read
problems through this module.

A YAML or CLI source is one of::

    file: problems.jsonl                      # written by `dca problems`
    gsm8k: test                               # 'train', 'test' or a GSM8K .jsonl
    synthetic: {count: 64, seed: 1, ...}      # arithmetic, with its knobs spelled out
    domain: {name: logic, count: 64, seed: 1, options: {max_depth: 3}}
    domain: {name: commonsense, file: strategyqa_train.json}

An evaluation set spec (``--sets``) is ``NAME[:N]`` where NAME is a named set
(`NAMED_SETS`: synthetic-easy|medium|hard|distractors, gsm8k-test, gsm8k-train), a
registered domain (generated with the evaluation seed, or loaded from its default data),
``DOMAIN@PATH`` (a domain's loader on a file), or a problems ``.jsonl`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import UserError
from ..files import read_problems_file
from ..records import Problem
from . import DOMAINS, get_domain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticSettings(_Strict):
    """A seeded set of synthetic word problems (see `dca.problems.synthetic`)."""

    count: int = Field(64, ge=1, description="How many problems.")
    seed: int = Field(0, description="Same seed, same problems.")
    min_operations: int = Field(1, ge=1, le=5)
    max_operations: int = Field(2, ge=1, le=5)
    distractors: tuple[int, int] = Field((1, 2), description="Inclusive range of distractor sentences per problem.")
    max_value: int = Field(20, ge=2, description="Largest number in a stated fact.")


class DomainSettings(_Strict):
    """Problems of any registered domain: generated (count, seed, options) or loaded (file)."""

    name: str = Field(description="A registered domain (see `dca domains`).")
    count: int | None = Field(None, ge=1, description="How many problems to generate (generated domains).")
    seed: int = Field(0, description="Same seed, same problems.")
    file: str | None = Field(None, description="For loaded domains: a split name or a data file (default: the domain's own).")
    options: dict[str, Any] = Field(default_factory=dict, description="The domain's generator options.")

    @model_validator(mode="after")
    def _known_domain(self):
        if self.name not in DOMAINS:
            raise ValueError(f"unknown domain {self.name!r}: choose from {', '.join(DOMAINS)}")
        domain = DOMAINS[self.name]
        if self.file is None and domain.generate is None and domain.load is None:
            raise ValueError(f"domain {self.name!r} has neither a generator nor a loader")
        if self.file is not None and domain.load is None:
            raise ValueError(f"domain {self.name!r} is generated, not loaded: drop 'file'")
        return self


class ProblemsSettings(_Strict):
    """Where problems come from: exactly one of a JSON-lines file, a GSM8K split, synthetic
    arithmetic or a domain."""

    file: str | None = Field(None, description="A problems JSON-lines file written by `dca problems`.")
    gsm8k: str | None = Field(None, description="'train', 'test' or a GSM8K JSON-lines path.")
    synthetic: SyntheticSettings | None = None
    domain: DomainSettings | None = None
    limit: int | None = Field(None, ge=1, description="Use only the first N problems.")

    @model_validator(mode="after")
    def _one_source(self):
        given = [name for name in ("file", "gsm8k", "synthetic", "domain") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of file, gsm8k, synthetic, domain (got {given or 'none'})")
        return self


def generate(name: str, count: int, seed: int, options: dict[str, Any] | None = None) -> list[Problem]:
    """`count` problems of a generated domain; bad options are a UserError."""
    domain = get_domain(name)
    if domain.generate is None:
        raise UserError(f"domain {name!r} has no generator; load it from a file (its loader: {domain.load_hint or 'a data file'})")
    try:
        return domain.generate(count, seed, dict(options or {}))
    except (TypeError, ValueError) as e:
        raise UserError(f"{name} problems: {e}") from e


def load(name: str, path_or_split: str | None = None, limit: int | None = None) -> list[Problem]:
    """Problems of a loaded domain from its data (a split name or a file)."""
    domain = get_domain(name)
    if domain.load is None:
        raise UserError(f"domain {name!r} is generated, not loaded; give a count instead of a file")
    try:
        return domain.load(path_or_split, limit)
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read {name} problems from {path_or_split or 'its default data'}: {str(e).splitlines()[0]}") from e


def domain_problems(settings: DomainSettings, *, default_count: int | None = None) -> list[Problem]:
    domain = get_domain(settings.name)
    if settings.file is not None or domain.generate is None:
        return load(settings.name, settings.file, settings.count)
    return generate(settings.name, settings.count or default_count or domain.default_count, settings.seed, settings.options)


def load_problems(settings: ProblemsSettings) -> list[Problem]:
    """The problems a ProblemsSettings names."""
    if settings.file is not None:
        problems = read_problems_file(settings.file)
    elif settings.gsm8k is not None:
        problems = load("gsm8k", settings.gsm8k)
    elif settings.domain is not None:
        problems = domain_problems(settings.domain)
    else:
        s = settings.synthetic
        options = dict(min_operations=s.min_operations, max_operations=s.max_operations, distractors=tuple(s.distractors), max_value=s.max_value)
        try:
            problems = generate("arithmetic", s.count, s.seed, options)
        except UserError as e:
            raise UserError(str(e).replace("arithmetic problems:", "synthetic problems:", 1)) from e
    return problems[: settings.limit] if settings.limit else problems


# ---------------------------------------------------------------------------------------------
# Evaluation sets (`dca eval --sets`)

#: Named synthetic sets: generator settings (all with max_value 20, like the demo).
SYNTHETIC_SETS: dict[str, dict[str, Any]] = {
    "synthetic-easy": dict(min_operations=1, max_operations=2, distractors=(0, 1)),
    "synthetic-medium": dict(min_operations=2, max_operations=3, distractors=(1, 2)),
    "synthetic-hard": dict(min_operations=4, max_operations=5, distractors=(2, 3)),
    "synthetic-distractors": dict(min_operations=1, max_operations=2, distractors=(3, 4)),
}
#: Every named set: the synthetic ones and the GSM8K splits.
NAMED_SETS = (*SYNTHETIC_SETS, "gsm8k-test", "gsm8k-train")
#: Problems in a synthetic set without a ``:N`` limit.
DEFAULT_SYNTHETIC_COUNT = 50
#: Seed of the evaluation's generated problems (training and warm start use 0, 1, 1000).
EVAL_SEED = 7000


@dataclass(kw_only=True)
class SetSpec:
    """One problem set named on the command line."""

    name: str
    """The name results are reported under (the spec without ``:N``; a file's stem)."""
    source: str
    """A `NAMED_SETS` name, a domain name, ``DOMAIN@PATH``, or a file path."""
    limit: int | None = None


def parse_set_spec(spec: str) -> SetSpec:
    """``"synthetic-easy"``, ``"gsm8k-test:50"``, ``"logic:30"``,
    ``"commonsense@data/strategyqa.json:20"``, ``"my/problems.jsonl:20"``."""
    spec = spec.strip()
    source, limit = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit():
        source, limit = head, int(tail)
        if limit < 1:
            raise UserError(f"set {spec!r}: the limit after ':' must be at least 1")
    if source in NAMED_SETS or source in DOMAINS:
        return SetSpec(name=source, source=source, limit=limit)
    name, at, path = source.partition("@")
    if at and name in DOMAINS:
        if DOMAINS[name].load is None:
            raise UserError(f"set {spec!r}: domain {name!r} is generated, not loaded from a file")
        if not Path(path).is_file():
            raise UserError(f"set {spec!r}: data file {path} does not exist")
        return SetSpec(name=f"{name}-{Path(path).stem}", source=source, limit=limit)
    if source.endswith(".jsonl") or Path(source).is_file():
        if not Path(source).is_file():
            raise UserError(f"set {spec!r}: problems file {source} does not exist")
        return SetSpec(name=Path(source).stem, source=source, limit=limit)
    known = ", ".join([*NAMED_SETS, *DOMAINS])
    raise UserError(f"unknown problem set {source!r}: use one of {known}, DOMAIN@FILE, or a problems .jsonl file (optionally with :N)")


def load_set(spec: SetSpec, *, seed: int = EVAL_SEED) -> list[Problem]:
    if spec.source in SYNTHETIC_SETS:
        options = dict(max_value=20, **SYNTHETIC_SETS[spec.source])
        return generate("arithmetic", spec.limit or DEFAULT_SYNTHETIC_COUNT, seed, options)
    if spec.source in ("gsm8k-test", "gsm8k-train"):
        try:
            return load("gsm8k", spec.source.removeprefix("gsm8k-"), spec.limit)
        except UserError as e:
            raise UserError(f"cannot read GSM8K for {spec.name}: {e}") from e
    if spec.source in DOMAINS:
        domain = DOMAINS[spec.source]
        if domain.generate is not None:
            return generate(spec.source, spec.limit or domain.default_count, seed)
        return load(spec.source, None, spec.limit)
    name, at, path = spec.source.partition("@")
    if at and name in DOMAINS:
        return load(name, path, spec.limit)
    problems = read_problems_file(spec.source)
    return problems[: spec.limit] if spec.limit else problems


__all__ = [
    "DEFAULT_SYNTHETIC_COUNT",
    "EVAL_SEED",
    "NAMED_SETS",
    "SYNTHETIC_SETS",
    "DomainSettings",
    "ProblemsSettings",
    "SetSpec",
    "SyntheticSettings",
    "domain_problems",
    "generate",
    "load",
    "load_problems",
    "load_set",
    "parse_set_spec",
]
