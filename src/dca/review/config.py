"""Reviewer declarations, read from YAML (`dca review --reviewers reviewers.yaml`).

Example::

    reviewers:
      - name: oracle                 # synthetic problems: labels from the known structure
        backend: oracle
      - name: reference              # GSM8K: labels from the reference solution's values
        backend: reference
      - name: gpt
        backend: openai              # any OpenAI-compatible endpoint (vLLM, Ollama, ...)
        model: gpt-4o-mini
        base_url: https://api.openai.com/v1   # optional; the SDK default otherwise
        api_key_env: OPENAI_API_KEY           # the key is read from this variable, never from the file
        params: {temperature: 0, max_tokens: 600}
        answer_format: lines                  # or json (+ structured_output: true for a JSON schema)
        price: {input: 0.15, output: 0.60}    # USD per million tokens
        concurrency: 8                        # calls in flight at once
        requests_per_minute: 500
        timeout: 60                           # seconds per call
        max_attempts: 4                       # per call, for timeouts, 429, 5xx, dropped connections
        repair_attempts: 1                    # extra turns after an invalid answer
      - name: claude
        backend: anthropic
        model: claude-sonnet-4-5
        params: {max_tokens: 800}
        price: {input: 3, output: 15}
      - name: smollm
        backend: hf                  # a local chat model, grammar-constrained (dca.review.grammar)
        model: embedded              # or a checkpoint directory or a hub id
        params: {max_new_tokens: 256, temperature: 0}
      - name: noisy-gpt
        backend: noisy               # another declared reviewer's reviews with a seeded share of labels flipped
        inner: gpt
        flip_rate: 0.2
        seed: 0
      - name: counterfactual
        backend: counterfactual      # each unit's causal effect, measured with a model (dca.review.counterfactual)
        model: embedded              # in training and `dca eval`: the policy model itself when model is empty
        counterfactual: {samples: 4, threshold: 0.25}
      - name: self-strict
        backend: persona             # the policy reviews its own CoT after a persona token (dca.review.persona)
        persona: strict              # built in: strict, lenient, causal; or one in the checkpoint's personas.json
        model: runs/personas         # outside training; in training the policy itself when empty
      - name: smollm-asks
        backend: hf
        model: embedded
        dialogue: {max_questions: 2, answerer: policy, model: embedded}   # dca.review.dialogue

``backend`` names an entry of the one reviewer registry (`dca.review.registry.REGISTRY`);
an unknown name is an error that lists the known ones. Config files are untrusted input:
pydantic with unknown keys rejected; any mistake becomes a one-line `UserError` naming the
entry and the field. A file never holds an API key: an ``api_key`` entry is refused with a
pointer to ``api_key_env``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..errors import UserError, validation_problem
from ..files import read_yaml
from ..llm import LLM_BACKENDS, LLMSpec, Price
from ..redact import is_secret_name, redact_url
from .counterfactual import CounterfactualConfig
from .dialogue import DialogueSpec
from .grammar import GRAMMAR_PARAMS
from .protocol import ANSWER_FORMATS, MODES

__all__ = ["LLM_BACKENDS", "Price", "ReviewerSpec", "ReviewersFile", "load_reviewers"]


#: Every reviewer kind a spec may name, in the order error messages list them; the registry
#: (`dca.review.registry.REGISTRY`) has one builder for each (checked when it is imported).
REVIEWER_BACKENDS = ("oracle", "reference", "noisy", "counterfactual", "persona", "hf", "openai", "anthropic")


class ReviewerSpec(LLMSpec):
    """One configured reviewer: the `dca.llm.LLMSpec` call settings (LLM backends) plus how it reviews."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Names the reviewer in reviews and summaries.")
    backend: str = Field(description="One of REVIEWER_BACKENDS (each built by dca.review.registry.REGISTRY).")
    mode: str = Field("units", description="'units' (answer with unit indices) or 'quotes' (quote each step).")
    answer_format: str = Field("lines", description="'lines' (one short line per step; cheapest) or 'json' (unit mode).")
    show_reference_answer: bool = Field(False, description="Show the gold answer in the prompt.")
    repair_attempts: int = Field(1, ge=0, le=5, description="Extra turns after an invalid answer.")
    inner: str | None = Field(None, description="noisy: the declared reviewer whose reviews it flips.")
    flip_rate: float = Field(0.1, ge=0, le=1, description="noisy: share of covered units whose label is flipped.")
    seed: int = Field(0, description="noisy: seeds the flips (with each trace id).")
    relabel: str = Field("flip", description="noisy: a chosen unit gets another label (flip) or any label at random (random; with flip_rate 1, a random reviewer).")
    counterfactual: dict[str, Any] = Field(default_factory=dict, description="counterfactual: CounterfactualConfig fields.")
    persona: str | None = Field(None, description="persona: the persona the policy reviews as (strict, lenient, causal, or one in the checkpoint's personas.json).")
    dialogue: DialogueSpec | None = Field(None, description="LLM backends: the reviewer may question the assistant before answering (dca.review.dialogue).")
    _inner_spec: "ReviewerSpec | None" = PrivateAttr(None)
    max_prompt_tokens: int = Field(16_000, ge=100, le=2_000_000, description="Longest request sent, in estimated tokens; a longer (or empty) trace becomes a failed review at no cost.")
    _answerer_spec: "ReviewerSpec | None" = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _no_keys_in_files(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in ("api_key", "key", "token")):
            raise ValueError("API keys do not belong in the file; put the key in an environment variable and name it in api_key_env")
        params = data.get("params") if isinstance(data, dict) else None
        if isinstance(params, dict) and any(is_secret_name(k) for k in params):
            secret = next(k for k in params if is_secret_name(k))
            raise ValueError(f"params.{secret}: API keys do not belong in the file; put the key in an environment variable and name it in api_key_env")
        return data

    @field_validator("backend")
    @classmethod
    def _registered(cls, backend: str) -> str:
        if backend not in REVIEWER_BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(REVIEWER_BACKENDS)}")
        return backend

    @model_validator(mode="after")
    def _check(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {list(ANSWER_FORMATS)}")
        if self.backend in LLM_BACKENDS and not self.model:
            raise ValueError(f"backend '{self.backend}' needs a model")
        if self.backend == "noisy" and not self.inner:
            raise ValueError("backend 'noisy' needs inner: the name of the reviewer whose reviews it flips")
        if self.inner and self.backend != "noisy":
            raise ValueError("inner is for backend 'noisy' only")
        if self.relabel not in ("flip", "random"):
            raise ValueError(f"relabel must be 'flip' or 'random', got {self.relabel!r}")
        if self.relabel != "flip" and self.backend != "noisy":
            raise ValueError("relabel is for backend 'noisy' only")
        if self.counterfactual and self.backend != "counterfactual":
            raise ValueError("counterfactual settings are for backend 'counterfactual' only")
        if self.persona is not None and self.backend != "persona":
            raise ValueError("persona is for backend 'persona' only")
        if self.dialogue is not None:
            if self.backend not in LLM_BACKENDS:
                raise ValueError(f"dialogue needs an LLM backend ({', '.join(LLM_BACKENDS)}), not '{self.backend}'")
            if self.mode != "units" or (self.backend == "hf" and self.answer_format != "lines"):
                raise ValueError("dialogue reviews answer in unit mode (and, with backend 'hf', in the line form)")
        if self.backend == "counterfactual":
            try:
                CounterfactualConfig(**self.counterfactual)
            except (TypeError, ValueError) as e:
                raise ValueError(f"counterfactual: {e}") from e
        self.default_key_env()
        return self

    @property
    def is_llm(self) -> bool:
        return self.backend in LLM_BACKENDS

    def caller_params(self) -> tuple[str, ...]:
        """An ``hf`` reviewer's grammar parameters (`dca.review.grammar`): read by the review
        layer, never passed to the backend (a judge or bridge writer with this spec ignores them)."""
        return GRAMMAR_PARAMS if self.backend == "hf" else ()

    @property
    def inner_spec(self) -> "ReviewerSpec | None":
        """noisy: the spec `inner` names (set by `load_reviewers` / `ReviewersFile`)."""
        return self._inner_spec

    def with_inner(self, inner: "ReviewerSpec") -> "ReviewerSpec":
        self._inner_spec = inner
        return self

    @property
    def answerer_spec(self) -> "ReviewerSpec | None":
        """dialogue: the declared LLM reviewer that answers as the student (None: the policy)."""
        return self._answerer_spec

    def with_answerer(self, answerer: "ReviewerSpec") -> "ReviewerSpec":
        self._answerer_spec = answerer
        return self

    def public_dict(self) -> dict[str, Any]:
        """The spec as recorded in review metadata (no secrets: the file holds no key, and a
        ``base_url``'s user-info and key-like query values are left out)."""
        data = self.model_dump(mode="json", include={"name", "backend", "model", "base_url", "params", "mode", "answer_format", "show_reference_answer"})
        if data.get("base_url"):
            data["base_url"] = redact_url(data["base_url"])
        return data


class ReviewersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewers: list[ReviewerSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        names = [r.name for r in self.reviewers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"reviewer names must be unique; repeated: {duplicates}")
        by_name = {r.name: r for r in self.reviewers}
        for spec in self.reviewers:  # noisy reviewers wrap another declared reviewer, without cycles
            seen = [spec.name]
            current = spec
            while current.backend == "noisy":
                if current.inner not in by_name:
                    raise ValueError(f"reviewer {current.name!r}: inner {current.inner!r} is not declared in this file")
                if current.inner in seen:
                    raise ValueError(f"reviewer {spec.name!r}: noisy reviewers wrap each other in a cycle ({' -> '.join([*seen, current.inner])})")
                current.with_inner(by_name[current.inner])
                seen.append(current.inner)
                current = by_name[current.inner]
        for spec in self.reviewers:  # a dialogue's answerer is 'policy' or a declared LLM reviewer
            if spec.dialogue is None or spec.dialogue.answerer == "policy":
                continue
            answerer = by_name.get(spec.dialogue.answerer)
            if answerer is None or not answerer.is_llm:
                raise ValueError(f"reviewer {spec.name!r}: dialogue.answerer {spec.dialogue.answerer!r} is neither 'policy' nor an LLM reviewer declared in this file")
            spec.with_answerer(answerer)
        return self


def load_reviewers(path: str | Path, only: list[str] | None = None) -> list[ReviewerSpec]:
    """Read and validate a reviewers YAML file; `only` keeps the named reviewers, in that order."""
    path = Path(path)
    data = read_yaml(path, what="reviewers")
    if isinstance(data, list):
        data = {"reviewers": data}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a 'reviewers:' list")
    try:
        specs = ReviewersFile.model_validate(data).reviewers
    except ValidationError as e:
        loc = list(e.errors()[0]["loc"])
        if len(loc) >= 2 and loc[0] == "reviewers" and isinstance(loc[1], int):
            entries = data.get("reviewers") or []
            entry = entries[loc[1]] if loc[1] < len(entries) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            loc = [f"reviewers[{loc[1]}]" + (f" ({name})" if name else ""), *loc[2:]]
        raise UserError(f"{path}: {validation_problem(e, loc=loc)}") from e
    if only:
        by_name = {s.name: s for s in specs}
        missing = [n for n in only if n not in by_name]
        if missing:
            raise UserError(f"{path} declares no reviewer {missing[0]!r}; it has {sorted(by_name)}")
        specs = [by_name[n] for n in only]
    return specs
