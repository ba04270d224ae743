"""Labels per token: what a credit policy reads about one trace.

`trace_labels` turns a trace's review (or consensus), its token spans and its answer span into
a `TraceLabels`: for every token the unit it belongs to (or the answer), for every unit its
agreed contribution label, the disputed units, the units a signed policy blames, and why there
are no labels at all when there are none. Credit policies (`dca.credit.policies`) are pure
functions of a batch of these and the sequence advantages; nothing else about the review
reaches them.

Rules of ownership (shared by every policy):

- A token belongs to the unit holding its first non-whitespace character (an all-whitespace
  token: its first character), so " 14" belongs to the unit of "14" even though its space may
  end the unit before.
- A token overlapping the final-answer span belongs to the answer (`ANSWER`).
- Zero-width tokens (EOS and other special tokens, see `token_char_spans`) go with the final
  answer span; without one, with the last unit.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable

from ..records import Consensus, Review, Unit

__all__ = ["ANSWER", "TraceLabels", "check_spans", "trace_labels", "unit_sums"]

#: `TraceLabels.token_units` value of tokens that belong to the final-answer span.
ANSWER = -1

_LAST_UNIT = object()


@dataclass(frozen=True, kw_only=True)
class TraceLabels:
    """One trace's labels, per token and per unit, as a credit policy reads them."""

    trace_id: str
    """Seeds the random controls (with `CreditConfig.seed`)."""
    token_units: tuple[int | None, ...]
    """Per completion token: the index of its unit, `ANSWER`, or None (outside every unit)."""
    unit_labels: tuple[str | None, ...] = ()
    """Per unit: its contribution label (None: no step covers it, or reviewers dispute it)."""
    disputed: frozenset[int] = frozenset()
    """Units a consensus's reviewers dispute (empty for a single review)."""
    blamed: frozenset[int] = frozenset()
    """Units a signed policy blames: labelled with a blamed contribution (and, with
    ``blame_dependents``, units of steps depending on one)."""
    failure: str | None = None
    """Why there are no labels: ``no review`` or ``review failed: ...``; None when reviewed."""

    def __len__(self) -> int:
        return len(self.token_units)

    def units_labelled(self, contributions: Iterable[str]) -> set[int]:
        wanted = set(contributions)
        return {i for i, label in enumerate(self.unit_labels) if label in wanted}


def trace_labels(
    *,
    trace_id: str,
    text: str,
    token_spans: list[tuple[int, int]],
    review: Review | Consensus | None,
    answer_span: tuple[int, int] | None,
    blame_contributions: tuple[str, ...] = (),
    blame_dependents: bool = False,
) -> TraceLabels:
    """The `TraceLabels` of one trace (raises ValueError when a span does not fit `text`)."""
    check_spans(text, token_spans, review, answer_span)
    units = list(review.units) if review is not None else []
    owners = tuple(token_units(text, token_spans, units, answer_span))
    if review is None:
        return TraceLabels(trace_id=trace_id, token_units=owners, failure="no review")
    if getattr(review, "status", "ok") == "failed":
        failure = f"review failed: {getattr(review, 'error', None)}"
        return TraceLabels(trace_id=trace_id, token_units=owners, failure=failure)
    labels = tuple(review.unit_contributions())
    disputed = frozenset(getattr(review, "disputed_units", ()))
    return TraceLabels(
        trace_id=trace_id,
        token_units=owners,
        unit_labels=labels,
        disputed=disputed,
        blamed=frozenset(_blamed_units(review, labels, disputed, blame_contributions, blame_dependents)),
    )


def _blamed_units(
    review: Review | Consensus, labels: tuple[str | None, ...], disputed: frozenset[int], blame: tuple[str, ...], dependents: bool
) -> set[int]:
    blamed = {i for i, label in enumerate(labels) if label in blame}
    if dependents and blamed:
        blamed_steps = {s.index for s in review.steps if s.contribution in blame}
        for step in sorted(review.steps, key=lambda s: s.index):  # depends_on points backwards
            if any(d in blamed_steps for d in step.depends_on):
                blamed_steps.add(step.index)
        for step in review.steps:
            if step.index in blamed_steps:
                blamed.update(range(step.first_unit, step.last_unit + 1))
        # A consensus's disputed units carry no agreed label; they are never blamed.
        blamed -= disputed
    return blamed


def _unit_at(units: list[Unit], char: int) -> int | None:
    if not units or not units[0].start <= char < units[-1].end:
        return None
    return bisect.bisect_right([u.start for u in units], char) - 1


def token_units(
    text: str,
    token_spans: list[tuple[int, int]],
    units: list[Unit],
    answer_span: tuple[int, int] | None,
    zero_width_owner: object = _LAST_UNIT,
) -> list[int | None]:
    """The unit index each token belongs to; `ANSWER` for the answer span; None if no unit.

    Zero-width (special) tokens go with the answer, else with the last unit (or with
    `zero_width_owner` when given).
    """
    if zero_width_owner is _LAST_UNIT:
        if answer_span is not None:
            zero_width_owner = ANSWER
        else:
            zero_width_owner = len(units) - 1 if units else None

    owners: list[int | None] = []
    for start, end in token_spans:
        if start == end:
            owners.append(zero_width_owner)  # type: ignore[arg-type]
            continue
        if answer_span is not None and start < answer_span[1] and end > answer_span[0]:
            owners.append(ANSWER)
            continue
        first = start
        while first < end and text[first].isspace():
            first += 1
        owners.append(_unit_at(units, first if first < end else start))
    return owners


def unit_sums(text: str, token_spans: list[tuple[int, int]], units: list[Unit], advantages: list[float]) -> list[float]:
    """Per unit, the sum of the advantages of the tokens that belong to it (answer included)."""
    sums = [0.0] * len(units)
    for owner, value in zip(token_units(text, token_spans, units, None, zero_width_owner=None), advantages):
        if owner is not None:
            sums[owner] += value
    return sums


def check_spans(
    text: str,
    token_spans: list[tuple[int, int]],
    review: Review | Consensus | None,
    answer_span: tuple[int, int] | None,
) -> None:
    """Raise ValueError when a span does not fit `text` (a caller mixing up traces)."""
    spans = list(token_spans)
    if answer_span is not None:
        spans.append(answer_span)
    if review is not None:
        spans += [(u.start, u.end) for u in review.units]
    for start, end in spans:
        if not 0 <= start <= end <= len(text):
            raise ValueError(
                f"span ({start}, {end}) does not fit a text of {len(text)} characters; "
                "pass the spans computed for this trace's completion"
            )
