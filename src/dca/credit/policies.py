"""Credit policies: one registry of pure functions from labels and advantages to token advantages.

GRPO gives every completion token the same advantage ``A`` (the group-normalized reward). A
credit policy keeps ``A`` per completion but chooses how it lands on the tokens, from the
reviewer's labels (`dca.credit.labels.TraceLabels`). Each policy is registered once, in
`POLICIES`, as a function ``(labels, advantages, config) -> CreditBatch`` over a batch:
`labels` holds B traces' token labels, `advantages` their B sequence advantages, and the
result a ``(B, T)`` array of per-token advantages (T the longest trace; zeros past each
trace's end), as verl registers its advantage estimators.

- ``uniform``: every token gets ``A``; plain GRPO, the baseline arm.
- ``mask``: tokens of units whose contribution is useful (``CreditConfig.useful_contributions``)
  get ``A``, all others 0. The trace's total advantage shrinks.
- ``conserve``: like ``mask``, rescaled by ``N / credited`` so the trace's total
  ``sum(token advantages) == N * A`` is the same as under ``uniform``: the reward is
  redistributed, never created, so gaming the reviewer cannot raise it (DESIGN.md).
- ``random``: the control for ``conserve``; credits about as many tokens as ``mask`` would, on
  randomly chosen units (seeded by ``CreditConfig.seed`` and the trace id), rescaled the same way.
- ``signed``: the sign of ``A`` decides where it goes. A positive advantage goes to the useful
  units as under ``conserve``; a negative one to the units the reviewers *blame*
  (``CreditConfig.blame_contributions``, with ``blame_dependents`` also the steps built on a
  blamed step); total ``N * A`` both ways. ``CreditConfig.negative`` may instead send a negative
  advantage to every token (``uniform``) or nowhere (``zero``). No token's weight exceeds
  ``CreditConfig.max_weight`` times the uniform weight; the excess is spread evenly over the
  trace's other tokens, so the total is still ``N * A`` (see "Why signed is capped").
- ``signed-random``: the control for ``signed``; on each side about as many tokens as ``signed``
  would credit, on random units, rescaled and capped the same way. (Not to be confused with an
  *arm* that runs ``signed`` with the ``random`` reviewer: labels at random, placement by rule.)
- ``capo``: after CAPO (Xie et al. 2025, "CAPO: Towards Enhancing LLM Reasoning through
  Generative Credit Assignment", arXiv:2508.02298): every token keeps the outcome advantage
  ``A``, and tokens of units the reviewer marks wrong (the blamed contributions) get an extra
  ``-CreditConfig.capo_penalty``, in correct and failed completions alike. Departures: CAPO's
  labels come from an LLM-as-GenPRM with voting and its step penalty enters the reward before
  group normalization (with the outcome weighted above the process); here the labels are any
  reviewer's (or a consensus's) and the penalty is added to the normalized token advantage, in
  units of the group's reward SD. It is not conserving: a wrong step lowers the total.
- ``oar``: after OAR (Li et al. 2026, "Outcome-Grounded Advantage Reshaping for Fine-Grained
  Credit Assignment in Mathematical Reasoning", arXiv:2601.07408): ``A_t = A * w_t`` with
  importance weights ``w_t >= 0`` that sum to the trace length N (total conserved), pivotal
  tokens boosted and low-impact ones suppressed, none zeroed. Departure: OAR measures each
  token's importance by perturbation (OAR-P) or input gradients (OAR-G); here the importance
  comes from the reviewer's labels: useful units and the answer weigh ``1 + oar_strength``,
  every other token ``1 - oar_strength``, then all are scaled to sum to N.

The reviewer-free length-penalty control changes the *reward*, not the credit: see
`dca.train.length_reward` (it trains with ``uniform`` credit).

Rules shared by the label-reading policies (mask, conserve, random, signed, signed-random, oar):

- The final-answer span always carries credit: every token overlapping it is credited, whatever
  the review says (also under ``random``, and under ``signed`` on both sides).
- A consensus whose reviewers dispute some units and agree on no useful (blamed) unit trains on
  nothing (all zeros, ``disputed="mask"``): DCA trains only where reviewers agree.
- The policy falls back to ``uniform`` when there is no review, the review failed, or the review
  marks no unit useful (blamed, on a signed policy's negative side); `Credit.fallback` says why.
- A consensus's disputed units count as not useful by default (``disputed="mask"``, and
  ``random`` never draws them); with ``disputed="uniform"`` they keep ``A`` and the policy
  shares out the rest (the trace total stays ``N * A``).

Why ``signed`` (issue 10): under ``mask`` and ``conserve`` a failed completion's penalty lands
on the correct steps, and the ``error`` step gets none. Why it is capped (issue 21): uncapped, a
failed completion whose only blamed unit is its answer line puts the whole ``N * A`` on the few
tokens of ``Answer: N`` (often x9 the uniform weight) while a padding step gets nothing, so
"conclude now" carries a large implicit penalty and "one more irrelevant step" none: the
incentive audit (`benchmarks/credit_incentives.py`, figures in docs/credit-policies.md) shows the
uncapped rule drive trailing padding up when padding is free. Bounding every token's weight to
``max_weight`` x uniform and spreading the excess over the trace's other tokens (the padding
included) removes that drift. The audit picked 1.5 (100 updates, 6 seeds, padding free; drift
in trailing padding / accuracy): uncapped +46.0 / +17.1 points, cap 3 -15.8 / -23.3, cap 2
-26.8 / +8.2, cap 1.5 -33.0 / +21.6, against GRPO's -5.5 / +22.5. (Sending every negative
advantage to all tokens, ``negative: uniform``, does as well but drops blame altogether.)

This module is part of the torch-free core: numpy in, numpy out.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..records import CONTRIBUTIONS, UNVERIFIED, USEFUL_CONTRIBUTIONS
from .labels import ANSWER, TraceLabels

__all__ = [
    "BLAME_CONTRIBUTIONS",
    "DISPUTED_CHOICES",
    "NEGATIVE_CHOICES",
    "POLICIES",
    "SIGNED_POLICIES",
    "CreditBatch",
    "CreditConfig",
    "CreditPolicy",
    "apply_policy",
]

#: Valid values of `CreditConfig.negative`: where a signed policy puts a negative advantage.
NEGATIVE_CHOICES = ("blame", "uniform", "zero")

#: Contributions a signed policy (and ``capo``) blames by default.
BLAME_CONTRIBUTIONS = ("error", "failed_attempt")

#: Valid values of `CreditConfig.disputed`: what a consensus's disputed units receive.
DISPUTED_CHOICES = ("mask", "uniform")

#: `CreditConfig.max_weight`'s default: chosen with the incentive audit (docs/credit-policies.md).
DEFAULT_MAX_WEIGHT = 1.5


@dataclass(kw_only=True)
class CreditConfig:
    """How reviews become per-token advantages: the policy's name and its settings."""

    policy: str = "conserve"
    """A key of `POLICIES` (see the module docstring)."""
    useful_contributions: tuple[str, ...] = USEFUL_CONTRIBUTIONS
    """Contribution labels whose units are credited (a signed policy's positive side)."""
    blame_contributions: tuple[str, ...] = BLAME_CONTRIBUTIONS
    """Contribution labels whose units carry a negative advantage under a signed policy (the
    units ``capo`` penalizes)."""
    blame_dependents: bool = False
    """Signed policies: also blame the units of steps that depend (directly or through other
    steps, by `Step.depends_on`) on a blamed step."""
    negative: str = "blame"
    """Signed policies: where a negative advantage goes: ``blame`` (the blamed units),
    ``uniform`` (every token, as plain GRPO) or ``zero`` (nowhere)."""
    max_weight: float | None = DEFAULT_MAX_WEIGHT
    """Signed policies: no token's weight exceeds this multiple of the uniform weight; the
    excess is spread over the trace's other tokens (total conserved). None: uncapped (phase 1)."""
    capo_penalty: float = 1.0
    """``capo``: subtracted from the advantage of every token of a blamed unit."""
    oar_strength: float = 0.5
    """``oar``: useful and answer tokens weigh 1 + strength, the others 1 - strength (then
    normalized to sum to the length). In [0, 1): 0 is uniform."""
    seed: int = 0
    """Seed of the random controls (combined with each trace id)."""
    disputed: str = "mask"
    """What the disputed units of a `Consensus` receive: ``mask`` (no credit, as if not
    useful) or ``uniform`` (the plain GRPO advantage). Single reviews have no disputed units."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown credit policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if self.disputed not in DISPUTED_CHOICES:
            raise ValueError(f"unknown disputed-units treatment {self.disputed!r}; choose one of {', '.join(DISPUTED_CHOICES)}")
        if self.negative not in NEGATIVE_CHOICES:
            raise ValueError(f"unknown negative-advantage treatment {self.negative!r}; choose one of {', '.join(NEGATIVE_CHOICES)}")
        if self.max_weight is not None and self.max_weight < 1:
            raise ValueError(f"max_weight must be at least 1 (the uniform weight) or None, got {self.max_weight}")
        if not 0 <= self.oar_strength < 1:
            raise ValueError(f"oar_strength must lie in [0, 1), got {self.oar_strength}")
        if self.capo_penalty < 0:
            raise ValueError(f"capo_penalty must be >= 0, got {self.capo_penalty}")
        for name in ("useful_contributions", "blame_contributions"):
            labels = tuple(getattr(self, name))
            setattr(self, name, labels)
            unknown = [c for c in labels if c not in CONTRIBUTIONS]
            if unknown:
                raise ValueError(f"unknown contribution label(s) {unknown} in {name}; choose from {', '.join(CONTRIBUTIONS)}")
            # Issue 22: `unverified` is no judgement; it is treated as a missing label.
            if UNVERIFIED in labels:
                raise ValueError(f"{name} cannot hold {UNVERIFIED!r}: an unverified unit counts as unlabelled (neither credited nor blamed)")
        overlap = set(self.useful_contributions) & set(self.blame_contributions)
        if overlap:
            raise ValueError(f"contribution label(s) {sorted(overlap)} are both useful and blamed; a unit cannot be both")


@dataclass(kw_only=True)
class CreditBatch:
    """A policy's output for B traces."""

    advantages: np.ndarray
    """(B, T) per-token advantages; zeros past each trace's length."""
    counted: np.ndarray
    """(B, T) bool: tokens selected to carry the advantage (even when the advantage is 0)."""
    fallbacks: list[str | None]
    """Per trace: why the policy fell back (to uniform credit, or to no training), or None."""

    def row(self, b: int, length: int) -> list[float]:
        return [float(x) for x in self.advantages[b, :length]]


PolicyFunction = Callable[[Sequence[TraceLabels], Sequence[float], CreditConfig], CreditBatch]


@dataclass(frozen=True, kw_only=True)
class CreditPolicy:
    """A registered credit policy: its function and what it claims."""

    name: str
    function: PolicyFunction
    summary: str
    reads_labels: bool
    """False for ``uniform``: trains without a reviewer's labels."""
    removes_padding: bool
    """Claims to lower padding: gives irrelevant units no more than a useful unit's weight on the
    positive side. The incentive audit's property test holds it to the claim."""
    conserving: bool
    """Each trace's token advantages sum to ``N * A`` (as under uniform)."""


#: Every credit policy by name; `CreditConfig.policy` must be a key.
POLICIES: dict[str, CreditPolicy] = {}

#: Policies that treat a negative advantage apart (see the module docstring).
SIGNED_POLICIES = ("signed", "signed-random")


def apply_policy(labels: Sequence[TraceLabels], advantages: Sequence[float], config: CreditConfig) -> CreditBatch:
    """The per-token advantages of a batch under `config.policy` (a `POLICIES` lookup)."""
    if len(labels) != len(advantages):
        raise ValueError(f"{len(labels)} traces' labels but {len(advantages)} advantages")
    return POLICIES[config.policy].function(labels, advantages, config)


# ---------------------------------------------------------------------------------------------
# Per-trace rules, lifted to batches


@dataclass
class _Row:
    advantages: list[float]
    counted: list[bool]
    fallback: str | None = None


def _scaled(advantage: float, weights: list[float], counted: list[bool] | None = None, fallback: str | None = None) -> _Row:
    return _Row([advantage * w for w in weights], counted if counted is not None else [w != 0 for w in weights], fallback)


def _batch(rows: list[_Row]) -> CreditBatch:
    width = max((len(r.advantages) for r in rows), default=0)
    advantages = np.zeros((len(rows), width))
    counted = np.zeros((len(rows), width), dtype=bool)
    for b, r in enumerate(rows):
        advantages[b, : len(r.advantages)] = r.advantages
        counted[b, : len(r.counted)] = r.counted
    return CreditBatch(advantages=advantages, counted=counted, fallbacks=[r.fallback for r in rows])


def _register(name: str, *, summary: str, reads_labels: bool = True, removes_padding: bool, conserving: bool):
    """Register a per-trace rule ``(labels, advantage, config) -> _Row`` under `name`."""

    def wrap(rule: Callable[[TraceLabels, float, CreditConfig], _Row]) -> Callable:
        def function(labels: Sequence[TraceLabels], advantages: Sequence[float], config: CreditConfig) -> CreditBatch:
            return _batch([rule(trace, float(a), config) for trace, a in zip(labels, advantages)])

        function.__doc__ = rule.__doc__
        function.__name__ = rule.__name__
        POLICIES[name] = CreditPolicy(
            name=name, function=function, summary=summary, reads_labels=reads_labels, removes_padding=removes_padding, conserving=conserving
        )
        return function

    return wrap


@dataclass
class _Selection:
    """What a label-reading policy credits in one trace (after the shared rules)."""

    credited: list[bool]
    """Tokens that carry the policy's weight: the chosen units' and the answer's."""
    fixed: list[bool]
    """Tokens kept at the plain advantage (disputed units under ``disputed="uniform"``)."""
    disputed: frozenset[int]


def _select(trace: TraceLabels, advantage: float, config: CreditConfig, *, signed: bool) -> _Row | _Selection:
    """The rules shared by label-reading policies: a finished row (fallback) or a selection."""
    n = len(trace)
    uniform = [1.0] * n
    if n == 0:
        return _scaled(advantage, uniform)
    negative_side = signed and advantage < 0
    if negative_side and config.negative == "uniform":
        return _scaled(advantage, uniform)
    if negative_side and config.negative == "zero":
        return _scaled(advantage, [0.0] * n)
    if trace.failure is not None:
        return _scaled(advantage, uniform, fallback=trace.failure)
    if negative_side:
        chosen = set(trace.blamed)
        what = "blamed"
        nothing = f"nothing blamed: the review labels no unit {' or '.join(config.blame_contributions)}"
    else:
        chosen = trace.units_labelled(config.useful_contributions)
        what = "useful"
        nothing = "nothing credited: the review marks no unit useful"
    units = trace.token_units
    if not any(unit in chosen for unit in units):
        if config.disputed == "mask" and trace.disputed:
            # Reviewers disagree and agree on no useful (blamed) unit: DCA trains only where they
            # agree, so this trace trains on nothing (rather than on everything, as GRPO would).
            return _scaled(advantage, [0.0] * n, fallback=f"not trained: reviewers agree on no {what} unit")
        # Only the answer (or nothing) would be credited: conserve would then pile the whole
        # N * A onto a few answer tokens. Plain GRPO credit is the safer reading of such a review.
        return _scaled(advantage, uniform, fallback=nothing)
    kept = trace.disputed if config.disputed == "uniform" else frozenset()
    return _Selection(
        credited=[unit == ANSWER or unit in chosen for unit in units],
        fixed=[unit != ANSWER and unit in kept for unit in units],
        disputed=trace.disputed,
    )


def _conserved(advantage: float, selection: _Selection, max_weight: float | None = None) -> _Row:
    """Credited tokens share the total that fixed tokens leave (N * A in all), capped if asked."""
    credited, fixed = selection.credited, selection.fixed
    scale = (len(credited) - sum(fixed)) / sum(credited)
    weights = [1.0 if f else scale if c else 0.0 for c, f in zip(credited, fixed)]
    if max_weight is not None:
        weights = _capped(weights, credited, fixed, max_weight)
    return _scaled(advantage, weights, counted=[c or f for c, f in zip(credited, fixed)])


def _capped(weights: list[float], credited: list[bool], fixed: list[bool], cap: float) -> list[float]:
    """`weights` with none above `cap`, the excess spread evenly over the other free tokens.

    The uncredited (not fixed) tokens take the excess first, each up to `cap`; what they cannot
    hold goes to every free token below `cap`. The sum is unchanged whenever the free tokens
    can hold it (always: the weights average 1 and ``cap >= 1``).
    """
    w = list(weights)
    excess = sum(max(0.0, x - cap) for x in w)
    w = [min(x, cap) for x in w]
    for pool in ([i for i, (c, f) in enumerate(zip(credited, fixed)) if not c and not f], [i for i, f in enumerate(fixed) if not f]):
        while excess > 1e-12:
            room = [i for i in pool if w[i] < cap - 1e-12]
            if not room:
                break
            share = excess / len(room)
            for i in room:
                added = min(share, cap - w[i])
                w[i] += added
                excess -= added
    return w


def _randomized(trace: TraceLabels, selection: _Selection, seed: int) -> _Selection:
    """As many tokens as `selection` credits, on random units (the answer kept)."""
    pool = [None if unit in selection.disputed else unit for unit in trace.token_units]  # never drawn
    credited = _random_units_credit(pool, sum(selection.credited), _stable_seed(seed, trace.trace_id))
    return _Selection(credited=credited, fixed=selection.fixed, disputed=selection.disputed)


# ---------------------------------------------------------------------------------------------
# The policies


@_register("uniform", summary="plain GRPO: every token carries the sequence advantage", reads_labels=False, removes_padding=False, conserving=True)
def uniform(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """Every token gets the sequence advantage (plain GRPO)."""
    return _scaled(advantage, [1.0] * len(trace))


@_register("mask", summary="useful units carry the advantage, the others none (total shrinks)", removes_padding=True, conserving=False)
def mask(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """Useful units' (and the answer's) tokens get the advantage; the others 0."""
    s = _select(trace, advantage, config, signed=False)
    if isinstance(s, _Row):
        return s
    return _scaled(advantage, [1.0 if c or f else 0.0 for c, f in zip(s.credited, s.fixed)])


@_register("conserve", summary="useful units carry the advantage, rescaled so the total is N x A", removes_padding=True, conserving=True)
def conserve(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """Useful units' (and the answer's) tokens share N x A."""
    s = _select(trace, advantage, config, signed=False)
    return s if isinstance(s, _Row) else _conserved(advantage, s)


@_register("random", summary="control for conserve: as many tokens credited, on random units", removes_padding=False, conserving=True)
def random_units(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """As many tokens as ``mask`` would credit, on random units, sharing N x A."""
    s = _select(trace, advantage, config, signed=False)
    return s if isinstance(s, _Row) else _conserved(advantage, _randomized(trace, s, config.seed))


@_register("signed", summary="positive advantage to useful units, negative to blamed units; capped, total N x A", removes_padding=True, conserving=True)
def signed(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """Positive: useful units share N x A; negative: blamed units do; weights capped."""
    s = _select(trace, advantage, config, signed=True)
    return s if isinstance(s, _Row) else _conserved(advantage, s, config.max_weight)


@_register("signed-random", summary="control for signed: as many tokens on each side, on random units", removes_padding=False, conserving=True)
def signed_random(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """As many tokens as ``signed`` would credit on each side, on random units."""
    s = _select(trace, advantage, config, signed=True)
    return s if isinstance(s, _Row) else _conserved(advantage, _randomized(trace, s, config.seed), config.max_weight)


@_register("capo", summary="CAPO-style: the outcome advantage everywhere, minus a penalty on blamed units", removes_padding=False, conserving=False)
def capo(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """Every token gets A; tokens of blamed units also get -capo_penalty (after Xie et al. 2025)."""
    n = len(trace)
    if trace.failure is not None:
        return _scaled(advantage, [1.0] * n, fallback=trace.failure)
    wrong = [unit is not None and unit != ANSWER and unit in trace.blamed for unit in trace.token_units]
    return _Row([advantage - config.capo_penalty if w else advantage for w in wrong], [True] * n)


@_register("oar", summary="OAR-style: label importance weights summing to N (useful up, others down)", removes_padding=True, conserving=True)
def oar(trace: TraceLabels, advantage: float, config: CreditConfig) -> _Row:
    """A x w_t with w from the labels, sum(w) = N (after Li et al. 2026)."""
    n = len(trace)
    if n == 0:
        return _scaled(advantage, [])
    if trace.failure is not None:
        return _scaled(advantage, [1.0] * n, fallback=trace.failure)
    useful = trace.units_labelled(config.useful_contributions)
    kept = trace.disputed if config.disputed == "uniform" else frozenset()
    k = config.oar_strength
    raw = [1.0 if unit in kept and unit != ANSWER else 1 + k if unit == ANSWER or unit in useful else 1 - k for unit in trace.token_units]
    weights = [w * n / sum(raw) for w in raw]
    return _scaled(advantage, weights)


# ---------------------------------------------------------------------------------------------
# Random controls


def _random_units_credit(token_units: list[int | None], target: int, seed: int) -> list[bool]:
    """Credit the answer tokens plus random whole units, about `target` tokens in all.

    Units are drawn in a seeded random order; a unit is taken when it brings the count
    closer to `target` (never further), until the count reaches it. The result is never
    empty: `target` counts at least one chosen unit no larger than it, which is always taken.
    """
    credited = [unit == ANSWER for unit in token_units]
    count = sum(credited)
    sizes: dict[int, int] = {}
    for unit in token_units:
        if unit is not None and unit != ANSWER:
            sizes[unit] = sizes.get(unit, 0) + 1
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    chosen = set()
    for unit in order:
        if count >= target:
            break
        if count + sizes[unit] - target <= target - count:
            chosen.add(unit)
            count += sizes[unit]
    return [c or unit in chosen for c, unit in zip(credited, token_units)]


def _stable_seed(seed: int, trace_id: str) -> int:
    """A seed that depends on both inputs and is the same in every process (unlike hash())."""
    digest = hashlib.sha256(f"{seed}\x00{trace_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")
