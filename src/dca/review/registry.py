"""The one reviewer registry: every reviewer kind, built from a `ReviewerSpec` by backend name.

    REGISTRY = {"oracle": ..., "reference": ..., "noisy": ..., "counterfactual": ...,
                "persona": ..., "hf": ..., "openai": ..., "anthropic": ...}

`build_reviewers(specs, context)` is how the trainer (`dca.train.run`), ``dca review``
(`dca.review.runner.ReviewRunner`), ``dca eval`` and the experiment runner (through
`reviewer_for`, which also resolves ``auto``: the one place that rule lives) and the reviewers
YAML (`dca.review.config`, whose ``backend`` must be a key here) get reviewers; nothing else
constructs one. Every reviewer it returns implements `dca.review.base.Reviewer` (``review``
and ``review_many``; the latter never raises):

- ``oracle``, ``reference``: programmatic, inline (`ProgrammaticReviewer` around
  `OracleReviewer` / `ReferenceReviewer`);
- ``counterfactual``: inline, with a continuation engine: the context's (the policy model in
  ``dca eval``) or one loaded from the spec's ``model``;
- ``noisy``: wraps another declared reviewer (``inner``), built once and shared;
- ``persona``: inline, the policy (the context's engine) or the spec's ``model`` reviewing
  after a persona token (`dca.review.persona`);
- ``openai``, ``anthropic``, ``hf``: `dca.review.runner.LLMReviewer`, every call through one
  `dca.llm.LLMClient` per reviewer (cache, limits, retries, cost); with ``dialogue`` they may
  question an answerer first (`dca.review.dialogue`: the policy, or a declared LLM reviewer).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import ValidationError

from ..continuation import HFContinuationEngine
from ..domains import DOMAINS, OracleReviewer, domain_of
from ..errors import UserError
from ..llm import LLMBackend, LLMClient
from ..llm.cache import ReviewCache
from ..model import check_local_model, load_model
from ..records import Problem, Review, Unit
from ..rollout import render_prompt as render
from .base import Reviewer, ReviewItem, failed_review
from .config import REVIEWER_BACKENDS, ReviewerSpec
from .counterfactual import CounterfactualConfig, CounterfactualReviewer
from .dialogue import make_answerer
from .llm_reviewer import LLMReviewer
from .noisy import NoisyReviewer
from .persona import build_persona_reviewer
from .reference import ReferenceReviewer

__all__ = [
    "REGISTRY",
    "SUPPORTED_DOMAINS",
    "BuildContext",
    "ProgrammaticReviewer",
    "build_reviewer",
    "build_reviewers",
    "builtin_spec",
    "check_domains",
    "close_reviewers",
    "resolve_reviewer_name",
    "reviewer_for",
    "supported_domains",
]


@dataclass(kw_only=True)
class BuildContext:
    """What building a reviewer may need beyond its spec."""

    cache: ReviewCache | None = None
    """The LLM call cache (`dca.llm.cache.ReviewCache`); None: no cache."""
    engine: Any = None
    """counterfactual: a `dca.continuation.ContinuationEngine` (e.g. the evaluated policy)."""
    render_prompt: Callable[[Problem], str] | None = None
    """counterfactual: the prompt the policy saw for a problem, when an item's trace has none."""
    backends: dict[str, LLMBackend] = field(default_factory=dict)
    """LLM backend overrides by reviewer name (tests of paid APIs bind one to a local server)."""
    built: dict[str, Any] = field(default_factory=dict)
    """Reviewers built so far, by name: a noisy reviewer shares its inner reviewer's instance."""


class ProgrammaticReviewer:
    """A programmatic reviewer (oracle, reference, counterfactual) under its declared name.

    Runs inline. A review that is not ok is marked ``metadata["failure"]`` (``unsupported_problem``
    for the oracle and reference reviewers, whose problems lack the structure they need).
    """

    inline = True

    def __init__(self, spec: ReviewerSpec, inner: Any, *, failure: str = "unsupported_problem"):
        self.spec = spec
        self.inner = inner
        self.name = spec.name
        self._failure = failure
        self._takes_prompt = spec.backend == "counterfactual"

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str, prompt: str | None = None) -> Review:
        if self._takes_prompt:  # continuations from the policy: keep the caller's random state untouched
            import torch  # heavy: torch loads only when a model runs

            with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
                review = self.inner.review(problem, trace_completion, units, trace_id=trace_id, prompt=prompt)
        else:
            review = self.inner.review(problem, trace_completion, units, trace_id=trace_id)
        review.reviewer = self.name
        if review.status != "ok":
            review.metadata.setdefault("failure", self._failure)
        review.metadata.setdefault("backend", self.spec.backend)
        return review

    async def review_many(self, items: Sequence[ReviewItem]) -> list[Review]:
        reviews = []
        for item in items:
            started = time.perf_counter()
            try:
                review = self.review(item.problem, item.trace.completion, item.units, trace_id=item.trace.id, prompt=item.trace.prompt or None)
            except Exception as e:  # noqa: BLE001 - a reviewer failure is data, never a crash
                review = failed_review(self.name, item, "reviewer_error", f"{type(e).__name__}: {e}", metadata={"backend": self.spec.backend})
            review.usage["seconds"] = round(time.perf_counter() - started, 4)
            reviews.append(review)
        return reviews

    def close(self) -> None:
        pass


def _oracle(spec: ReviewerSpec, context: BuildContext) -> Reviewer:
    return ProgrammaticReviewer(spec, OracleReviewer())


def _reference(spec: ReviewerSpec, context: BuildContext) -> Reviewer:
    return ProgrammaticReviewer(spec, ReferenceReviewer())


def _counterfactual(spec: ReviewerSpec, context: BuildContext) -> Reviewer:
    engine, render_prompt = context.engine, context.render_prompt
    if engine is None or (spec.model and spec.model != getattr(engine, "name", None)):
        if not spec.model:
            raise UserError(f"reviewer '{spec.name}': backend 'counterfactual' needs a model here (no policy model to probe)")

        model, tokenizer = load_model(spec.model)
        engine = HFContinuationEngine(model, tokenizer, name=spec.model)
        render_prompt = lambda problem: render(tokenizer, problem)  # noqa: E731
    reviewer = CounterfactualReviewer(engine, CounterfactualConfig(**spec.counterfactual), render_prompt=render_prompt, name=spec.name)
    return ProgrammaticReviewer(spec, reviewer, failure="counterfactual_failed")


def _noisy(spec: ReviewerSpec, context: BuildContext) -> Reviewer:
    inner_spec = spec.inner_spec
    if inner_spec is None:
        raise UserError(f"reviewer '{spec.name}': inner reviewer {spec.inner!r} is not declared beside it")
    return NoisyReviewer(build_reviewer(inner_spec, context), spec.flip_rate, seed=spec.seed, name=spec.name, relabel=spec.relabel)


def _llm(spec: ReviewerSpec, context: BuildContext) -> Reviewer:
    client = LLMClient.from_spec(spec, cache=context.cache, backend=context.backends.get(spec.name))
    answerer = None
    if spec.dialogue is not None and spec.dialogue.max_questions > 0:
        declared = {spec.answerer_spec.name: spec.answerer_spec} if spec.answerer_spec is not None else {}
        answerer = make_answerer(spec.dialogue, context, declared)
    return LLMReviewer(spec, client, answerer=answerer)


def _persona(spec: ReviewerSpec, context: BuildContext) -> Reviewer:
    return build_persona_reviewer(spec, context)


#: Backend name -> builder. The reviewers YAML accepts exactly these names.
REGISTRY: dict[str, Callable[[ReviewerSpec, BuildContext], Reviewer]] = {
    "oracle": _oracle,
    "reference": _reference,
    "noisy": _noisy,
    "counterfactual": _counterfactual,
    "persona": _persona,
    "hf": _llm,
    "openai": _llm,
    "anthropic": _llm,
}
assert tuple(REGISTRY) == REVIEWER_BACKENDS, "every reviewer kind of dca.review.config has one builder here"


def _oracle_domains() -> set[str]:
    return {d.name for d in DOMAINS.values() if d.oracle is not None}


#: Backend name -> the problem domains its reviewers can review (a backend not listed reviews
#: any domain: LLM reviewers, counterfactual and persona reviewers read the text, not a structure).
#: The oracle needs a domain's known structure; the reference reviewer GSM8K's annotated solution.
SUPPORTED_DOMAINS: dict[str, Callable[[], set[str]]] = {
    "oracle": _oracle_domains,
    "reference": lambda: {"gsm8k"},
}


def supported_domains(spec: ReviewerSpec) -> set[str] | None:
    """The domains `spec`'s reviewer supports (a noisy reviewer: its inner one's); None: any."""
    while spec.backend == "noisy" and spec.inner_spec is not None:
        spec = spec.inner_spec
    declared = SUPPORTED_DOMAINS.get(spec.backend)
    return declared() if declared else None


def check_domains(specs: Sequence[ReviewerSpec], domains: set[str], *, where: str = "the problems") -> None:
    """A `UserError` when a reviewer cannot review one of `domains` (every review of it would
    fail as ``unsupported_problem``): checked before any model loads or file is written."""
    for spec in specs:
        supported = supported_domains(spec)
        if supported is None:
            continue
        missing = sorted(domains - supported)
        if missing:
            raise UserError(
                f"reviewer '{spec.name}' ({spec.backend}) cannot review {', '.join(missing)} problems in {where}: "
                f"it reviews {', '.join(sorted(supported))} only; choose another reviewer (e.g. an LLM reviewer of a reviewers file)"
            )


#: Backends that load a local model named by the spec's ``model`` (counterfactual and persona
#: reviewers only when one is given; otherwise they probe the policy).
LOCAL_MODEL_BACKENDS = ("hf", "counterfactual", "persona")


def check_local_models(specs: Sequence[ReviewerSpec]) -> None:
    """A `UserError` when a reviewer's local model is neither 'embedded', a checkpoint directory
    nor in the local Hugging Face cache: checked before any model loads (nothing is downloaded)."""
    for spec in specs:
        if spec.backend in LOCAL_MODEL_BACKENDS and spec.model:
            try:
                check_local_model(spec.model)
            except UserError as e:
                raise UserError(f"reviewer '{spec.name}' ({spec.backend}): {e}") from None


def build_reviewer(spec: ReviewerSpec, context: BuildContext | None = None) -> Reviewer:
    """The reviewer `spec` declares (once per name and context). A missing API key or model
    is a `UserError` here, before any work."""
    context = context or BuildContext()
    if spec.name not in context.built:
        context.built[spec.name] = REGISTRY[spec.backend](spec, context)
    return context.built[spec.name]


def build_reviewers(specs: Sequence[ReviewerSpec], context: BuildContext | None = None) -> list[Reviewer]:
    """Every declared reviewer, in order (see `build_reviewer`); on an error, the ones already
    built are closed."""
    context = context or BuildContext()
    try:
        return [build_reviewer(spec, context) for spec in specs]
    except BaseException:
        close_reviewers(list(context.built.values()))
        raise


def close_reviewers(reviewers: Sequence[Any]) -> None:
    """Close what reviewers hold (LLM clients' connections); never raises."""
    for reviewer in reviewers:
        close = getattr(reviewer, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


#: Built-in degraded oracles (reviewers of known noise, issue 21): ``oracle-flip-R`` flips a share
#: R of the oracle's unit labels; ``oracle-random`` labels every unit at random.
NOISY_ORACLE = re.compile(r"^oracle-(?:flip-(?P<rate>0(?:\.\d+)?|1(?:\.0+)?)|(?P<random>random))$")


def builtin_spec(name: str) -> ReviewerSpec | None:
    """The spec of a reviewer that needs no settings (named by its backend: oracle, reference,
    counterfactual; or a degraded oracle, `NOISY_ORACLE`), or None when `name` needs a
    declaration in a reviewers file."""
    noisy = NOISY_ORACLE.match(name)
    if noisy:
        rate, relabel = (1.0, "random") if noisy["random"] else (float(noisy["rate"]), "flip")
        return ReviewerSpec(name=name, backend="noisy", inner="oracle", flip_rate=rate, relabel=relabel).with_inner(ReviewerSpec(name="oracle", backend="oracle"))
    if name not in REGISTRY:
        return None
    try:
        return ReviewerSpec(name=name, backend=name)
    except ValidationError:
        return None


def resolve_reviewer_name(name: str, problems: Sequence[Problem]) -> str | None:
    """The built-in reviewer a ``--reviewer`` choice names for `problems` (None: no reviewer).

    ``auto`` is the oracle where every problem has a known structure (its operations, or a
    domain with an oracle of its own), else the reference reviewer where every problem has a
    reference solution, else None; ``none`` is None; any other name is itself.
    """
    if name == "auto":
        if problems and all(p.operations or (domain_of(p).name != "arithmetic" and domain_of(p).oracle) for p in problems):
            return "oracle"
        if problems and all(p.reference_steps for p in problems):
            return "reference"
        return None
    return None if name == "none" else name


def reviewer_for(
    name: str, problems: Sequence[Problem], context: BuildContext | None = None, *, counterfactual: dict[str, Any] | None = None
) -> Reviewer | None:
    """The built-in reviewer `name` picks for `problems` (`resolve_reviewer_name`; None: none),
    built by the registry; `counterfactual` holds `CounterfactualConfig` fields for
    ``counterfactual``, whose engine is the context's (the evaluated model)."""
    resolved = resolve_reviewer_name(name, problems)
    if resolved is None:
        return None
    try:
        spec = ReviewerSpec(name=resolved, backend=resolved, counterfactual=(counterfactual or {}) if resolved == "counterfactual" else {})
    except ValidationError as e:
        raise UserError(f"{resolved} reviewer: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from e
    return build_reviewer(spec, context)
