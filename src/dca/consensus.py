"""Consensus: merge k reviews of one trace into the parts the reviewers agree on.

Reviewers may segment a completion differently (their units, and certainly their steps,
need not match), so every review is first *projected* onto the common refinement of all
unit boundaries: the consensus units are the spans between consecutive boundaries that any
usable review placed. Each reviewer's label of a consensus unit is the contribution of its
own step covering that unit (None where no step covers it). When all reviews share one
segmentation, as under the usual review protocol, the consensus units are those units.

Per unit, a **rule** decides whether the votes agree (k = reviews that did not fail):

- ``unanimous``: all k reviewers gave the same label;
- ``majority``: one label has more than k / 2 votes;
- ``at-least-M`` (e.g. ``at-least-2``): one label has at least M votes, and no other label
  has as many (a tie is not agreement).

A reviewer that left a unit uncovered abstains, which counts against agreement (it is one
of the k). A unit that no reviewer covers is *uncovered*: neither agreed nor disputed. Any
other unit without agreement is *disputed*. Failed reviews are left out of k and counted in
`Consensus.failed_reviews`; a trace whose reviews all failed gets a consensus with no steps.

Consensus steps are maximal runs of agreed units with the same agreed contribution and the
same function (the most common function among the agreeing reviewers, ties broken in
`FUNCTIONS` order); a run is also cut where every reviewer who agreed on both sides starts
a new step of its own. A step's *agreeing reviewers* are those who voted the agreed label on
all its units (if none did, on any of them). A consensus step depends on another when,
for every agreeing reviewer, one of the steps it depends on overlaps that other step: only
dependencies all of them share survive. The step's reason joins the agreeing reviewers'
distinct reasons. With a single review the consensus is that review: same units, steps,
dependencies and reasons (a property test checks this).

Recorded per unit: the votes (reviewer -> label) and the agreement level (the share of the
k reviewers that voted the most common label); per trace: the fraction agreed, weighted by
characters so that it does not depend on how finely the units were cut. `Consensus.reviewers`
lists, sorted by name, the reviewers whose votes count (failed ones are only counted).

Everything here is a pure function of the reviews; the order of the reviews never matters.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass

from .records import FUNCTIONS, Consensus, Review, Step, Unit

__all__ = [
    "build_consensus",
    "build_consensuses",
    "check_rule",
    "common_units",
    "group_reviews",
    "project_review",
]

_AT_LEAST = re.compile(r"at-least-(\d+)")


def check_rule(rule: str) -> str:
    """`rule` if it is a valid consensus rule, else ValueError saying which rules exist."""
    match = _AT_LEAST.fullmatch(rule)
    if rule in ("unanimous", "majority") or (match and int(match.group(1)) >= 1):
        return rule
    raise ValueError(f"unknown consensus rule {rule!r}; use unanimous, majority or at-least-M (M >= 1)")


def _agreed_label(votes: dict[str, str], k: int, rule: str) -> str | None:
    """The label the rule accepts for one unit's votes, or None."""
    ranked = Counter(votes.values()).most_common()
    if not ranked:
        return None
    label, count = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == count
    if rule == "unanimous":
        return label if count == k else None
    if rule == "majority":
        return label if count * 2 > k else None
    needed = int(rule.removeprefix("at-least-"))
    return label if count >= needed and not tied else None


@dataclass
class _Projection:
    """One review's view of the consensus units."""

    review: Review
    step_of: list[int | None]
    """Per consensus unit: the position in `review.steps` of the step covering it."""

    def label(self, unit: int) -> str | None:
        step = self.step_of[unit]
        return None if step is None else self.review.steps[step].contribution

    def starts_step(self, unit: int) -> bool:
        return unit == 0 or self.step_of[unit] != self.step_of[unit - 1]


def project_review(review: Review, units: list[Unit]) -> list[int | None]:
    """For each of `units` (a refinement of the review's units), the position in
    `review.steps` of the step that covers it, or None. A unit covered by two steps belongs
    to the later one, as in `Review.unit_contributions`."""
    own_step: list[int | None] = [None] * len(review.units)
    for position, step in enumerate(review.steps):
        for i in range(max(step.first_unit, 0), min(step.last_unit, len(review.units) - 1) + 1):
            own_step[i] = position
    starts = [u.start for u in review.units]
    return [own_step[bisect.bisect_right(starts, unit.start) - 1] if starts else None for unit in units]


def _text(review: Review) -> str:
    return "".join(u.text for u in review.units)


def common_units(reviews: list[Review]) -> list[Unit]:
    """The common refinement of the reviews' unit boundaries (the reviews must spell one text)."""
    if not reviews or not _text(reviews[0]):
        return []
    text = _text(reviews[0])
    boundaries = sorted({u.start for r in reviews for u in r.units} | {len(text)})
    if boundaries[0] != 0:
        boundaries.insert(0, 0)
    return [
        Unit(index=i, start=start, end=end, text=text[start:end])
        for i, (start, end) in enumerate(zip(boundaries, boundaries[1:]))
    ]


def build_consensus(reviews: list[Review], *, rule: str = "majority") -> Consensus:
    """Merge the reviews of one trace (see the module docstring).

    Raises ValueError when the reviews belong to different traces, a reviewer appears twice,
    the usable reviews cover different texts, or the rule is unknown.
    """
    check_rule(rule)
    if not reviews:
        raise ValueError("a consensus needs at least one review")
    trace_ids = {r.trace_id for r in reviews}
    if len(trace_ids) > 1:
        raise ValueError(f"reviews of different traces {sorted(trace_ids)} cannot be merged")
    names = Counter(r.reviewer for r in reviews)
    twice = sorted(n for n, c in names.items() if c > 1)
    if twice:
        raise ValueError(f"trace {reviews[0].trace_id}: reviewer(s) {twice} reviewed it more than once")
    trace_id = reviews[0].trace_id
    usable = sorted((r for r in reviews if r.status == "ok"), key=lambda r: r.reviewer)
    failed = len(reviews) - len(usable)
    texts = {_text(r) for r in usable}
    if len(texts) > 1:
        raise ValueError(f"trace {trace_id}: the reviews' units spell different texts; review the same completion")
    with_units = usable or [r for r in reviews if r.units][:1]
    units = common_units(with_units)
    if not usable:
        return Consensus(
            trace_id=trace_id, reviewers=[], rule=rule, units=units,
            unit_votes=[{} for _ in units], unit_agreement=[0.0 for _ in units],
            failed_reviews=failed, fraction_agreed=0.0,
        )  # fmt: skip

    projections = [_Projection(r, project_review(r, units)) for r in usable]
    k = len(projections)
    votes: list[dict[str, str]] = []
    agreed: list[str | None] = []
    agreement: list[float] = []
    disputed: list[int] = []
    for i in range(len(units)):
        unit_votes = {p.review.reviewer: p.label(i) for p in projections if p.label(i) is not None}
        votes.append(unit_votes)
        label = _agreed_label(unit_votes, k, rule)
        agreed.append(label)
        agreement.append(max(Counter(unit_votes.values()).values(), default=0) / k)
        if unit_votes and label is None:
            disputed.append(i)

    steps = _consensus_steps(units, projections, agreed)
    total = sum(len(u.text) for u in units)
    agreed_chars = sum(len(u.text) for u, label in zip(units, agreed) if label is not None)
    return Consensus(
        trace_id=trace_id,
        reviewers=[p.review.reviewer for p in projections],
        rule=rule,
        units=units,
        steps=steps,
        unit_votes=votes,
        unit_agreement=agreement,
        disputed_units=disputed,
        failed_reviews=failed,
        fraction_agreed=agreed_chars / total if total else 0.0,
    )


def _consensus_steps(
    units: list[Unit], projections: list[_Projection], agreed: list[str | None]
) -> list[Step]:
    """Runs of agreed units -> steps with shared dependencies (see the module docstring)."""

    def voters(i: int) -> list[_Projection]:
        return [p for p in projections if agreed[i] is not None and p.label(i) == agreed[i]]

    def function(i: int) -> str:
        counts = Counter(p.review.steps[p.step_of[i]].function for p in voters(i))
        best = max(counts.values())
        candidates = [f for f in counts if counts[f] == best]
        return min(candidates, key=lambda f: (FUNCTIONS.index(f) if f in FUNCTIONS else len(FUNCTIONS), f))

    runs: list[list[int]] = []
    for i, label in enumerate(agreed):
        if label is None:
            continue
        previous = runs[-1][-1] if runs else None
        continues = (
            previous == i - 1
            and agreed[previous] == label
            and function(previous) == function(i)
        )
        if continues:
            both = [p for p in voters(i) if p in voters(previous)]
            continues = not both or not all(p.starts_step(i) for p in both)
        if continues:
            runs[-1].append(i)
        else:
            runs.append([i])

    step_of_unit = {i: n for n, run in enumerate(runs) for i in run}
    steps = []
    for n, run in enumerate(runs):
        on_all = [p for p in projections if all(p in voters(i) for i in run)]
        agreeing = on_all or [p for p in projections if any(p in voters(i) for i in run)]
        shared: set[int] | None = None
        reasons: list[str] = []
        for p in agreeing:
            own = sorted({p.step_of[i] for i in run})  # positions in p.review.steps
            for position in own:
                reason = p.review.steps[position].reason
                if reason and reason not in reasons:
                    reasons.append(reason)
            needed = {d for position in own for d in p.review.steps[position].depends_on}
            positions = {s.index: position for position, s in enumerate(p.review.steps)}
            needed_positions = {positions[d] for d in needed if d in positions}
            depends = {
                step_of_unit[i]
                for i, s in enumerate(p.step_of)
                if s in needed_positions and i in step_of_unit
            } - {n}
            shared = depends if shared is None else shared & depends
        steps.append(
            Step(
                index=n,
                first_unit=run[0],
                last_unit=run[-1],
                function=function(run[0]),
                contribution=agreed[run[0]],  # type: ignore[arg-type]
                depends_on=sorted(shared or ()),
                reason=" | ".join(reasons),
            )
        )
    return steps


def group_reviews(reviews: list[Review]) -> dict[str, list[Review]]:
    """Reviews grouped by trace id, traces in order of first appearance."""
    groups: dict[str, list[Review]] = {}
    for review in reviews:
        groups.setdefault(review.trace_id, []).append(review)
    return groups


def build_consensuses(reviews: list[Review], *, rule: str = "majority") -> list[Consensus]:
    """One consensus per trace, in order of each trace's first review."""
    return [build_consensus(group, rule=rule) for group in group_reviews(reviews).values()]


def consensus_warnings(consensuses: list[Consensus]) -> list[str]:
    """Where the consensus figures would mislead: traces with fewer than two usable reviews
    are one reviewer's labels (or none), not an agreement, and they agree with themselves."""
    thin = [c for c in consensuses if len(c.reviewers) < 2]
    if not thin:
        return []
    none = sum(1 for c in thin if not c.reviewers)
    failed = sum(c.failed_reviews for c in consensuses)
    return [
        f"{len(thin)} of {len(consensuses)} traces had fewer than 2 usable reviews ({none} with none; {failed} failed reviews in all): "
        "their consensus is one reviewer's labels, not an agreement; the agreed share counts traces with 2 or more only"
    ]


def agreed_share(consensuses: list[Consensus]) -> float | None:
    """The mean share of the text agreed, over the traces with two or more usable reviews
    (None: no such trace)."""
    merged = [c.fraction_agreed for c in consensuses if len(c.reviewers) >= 2]
    return sum(merged) / len(merged) if merged else None
