"""A deliberately noisy reviewer: another reviewer's review with a seeded share of labels flipped.

It exists to test and demonstrate consensus and agreement figures: as `flip_rate` rises,
agreement with the wrapped reviewer must fall. Each unit that a step of the inner review
covers is flipped, independently with probability `flip_rate`, to a contribution label drawn
uniformly from the other `CONTRIBUTIONS`. Each inner step is then cut into runs of units
that carry the same (possibly flipped) label; the pieces keep the step's function, reason
(flipped pieces say so) and dependencies (a piece depends on every piece of the steps its
step depended on). Unit boundaries are not changed, and uncovered units stay uncovered.

The random draws depend only on `seed` and the trace id, so a review is the same in every
process and whatever the order in which traces are reviewed. A failed inner review is
passed on unchanged except for the reviewer name. ``review_many`` asks the inner reviewer's
``review_many`` (an LLM reviewer's calls stay concurrent), then flips. Declared in a
reviewers YAML as ``backend: noisy`` with ``inner: NAME``, ``flip_rate`` and ``seed``.

With ``relabel="random"`` a chosen unit's new label is drawn uniformly from *all*
`CONTRIBUTIONS` (it may keep its label), so at ``flip_rate=1`` the labels are independent of the
inner review: a reviewer that labels at random (on the inner review's units). Built-in names
for training arms (`dca.review.registry.builtin_spec`): ``oracle-flip-R`` (the oracle with a
share R of its unit labels flipped, e.g. ``oracle-flip-0.2``) and ``oracle-random``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from typing import Sequence

from ..records import CONTRIBUTIONS, UNVERIFIED, Problem, Review, Step, Unit
from .base import Reviewer, ReviewItem, review_all

#: How a chosen unit is relabelled: another label (``flip``) or any label at random (``random``).
RELABEL_CHOICES = ("flip", "random")


class NoisyReviewer:
    """Wraps a reviewer and flips a seeded fraction of its unit labels (see the module docstring)."""

    def __init__(self, inner: Reviewer, flip_rate: float, *, seed: int = 0, name: str | None = None, relabel: str = "flip"):
        if not 0.0 <= flip_rate <= 1.0:
            raise ValueError(f"flip_rate must lie in [0, 1], got {flip_rate}")
        if relabel not in RELABEL_CHOICES:
            raise ValueError(f"relabel must be one of {', '.join(RELABEL_CHOICES)}, got {relabel!r}")
        self.relabel = relabel
        self.inner = inner
        self.flip_rate = flip_rate
        self.seed = seed
        self.name = name or f"noisy-{inner.name}-{flip_rate:g}"

    @property
    def inline(self) -> bool:
        """Runs inline when its inner reviewer does."""
        return getattr(self.inner, "inline", True)

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        return self._flipped(self.inner.review(problem, trace_completion, units, trace_id=trace_id), trace_id)

    async def review_many(self, items: Sequence[ReviewItem]) -> list[Review]:
        (inner,) = await review_all([self.inner], items)
        return [self._flipped(review, item.trace.id) for review, item in zip(inner, items)]

    def close(self) -> None:
        """The inner reviewer is closed by whoever built it (it may be shared)."""

    def _flipped(self, inner: Review, trace_id: str) -> Review:
        metadata = {**inner.metadata, "noise": {"inner": inner.reviewer, "flip_rate": self.flip_rate, "seed": self.seed, "relabel": self.relabel}}
        if inner.status != "ok":
            return replace(inner, reviewer=self.name, metadata=metadata)
        digest = hashlib.sha256(f"{self.seed}\x00{trace_id}".encode("utf-8")).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        steps, flipped = _flip(inner.steps, self.flip_rate, rng, random_labels=self.relabel == "random")
        return replace(
            inner, reviewer=self.name, steps=steps, metadata={**metadata, "flipped_units": flipped}
        )


def _flip(steps: list[Step], flip_rate: float, rng: random.Random, *, random_labels: bool = False) -> tuple[list[Step], list[int]]:
    """The steps cut into runs of equal labels after flipping; also the flipped unit indices
    (with `random_labels`: the relabelled ones, whether or not the label changed)."""
    pieces: list[tuple[Step, int, int, str]] = []  # (inner step, first unit, last unit, label)
    flipped: list[int] = []
    for step in steps:
        for unit in range(step.first_unit, step.last_unit + 1):
            label = step.contribution
            if rng.random() < flip_rate:
                label = rng.choice([c for c in CONTRIBUTIONS if c != UNVERIFIED and (random_labels or c != step.contribution)])
                flipped.append(unit)
            last = pieces[-1] if pieces else None
            if last is not None and last[0] is step and last[3] == label:
                pieces[-1] = (step, last[1], unit, label)
            else:
                pieces.append((step, unit, unit, label))
    pieces_of: dict[int, list[int]] = {}
    for n, (step, *_rest) in enumerate(pieces):
        pieces_of.setdefault(step.index, []).append(n)
    result = []
    for n, (step, first, last, label) in enumerate(pieces):
        depends = {p for d in step.depends_on for p in pieces_of.get(d, [])}
        reason = step.reason if label == step.contribution else f"{step.reason} [noise: flipped from {step.contribution}]"
        result.append(
            Step(
                index=n, first_unit=first, last_unit=last, function=step.function,
                contribution=label, depends_on=sorted(depends - {n}), reason=reason,
            )
        )  # fmt: skip
    return result, flipped
