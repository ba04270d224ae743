"""From reviews to `Credit` records: labels (`dca.credit.labels`) through a registered policy.

`compute_credit` does one trace, `compute_credits` a batch (the trainer's path: one policy call
for the whole batch); both return `Credit` records with the per-token advantages, the number of
tokens selected, the policy's fallback and the per-unit sums a viewer shows on the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..records import Consensus, Credit, Review
from .labels import TraceLabels, trace_labels, unit_sums
from .policies import CreditConfig, apply_policy

__all__ = ["CreditInput", "compute_credit", "compute_credits", "credit_statistics"]


@dataclass(kw_only=True)
class CreditInput:
    """One trace to credit: its completion, token spans, analysis, advantage and answer span."""

    trace_id: str
    text: str
    token_spans: list[tuple[int, int]]
    """From `dca.credit.token_char_spans`."""
    review: Review | Consensus | None
    """Units of `text` (from `dca.segment.segment`) with their labels; None: not reviewed."""
    sequence_advantage: float
    answer_span: tuple[int, int] | None
    """The final answer's character span in `text`; None when no answer was extracted."""


def compute_credits(items: Sequence[CreditInput], config: CreditConfig) -> list[Credit]:
    """Per-token advantages for a batch of traces under `config.policy`.

    Raises ValueError when a span does not fit its text. `Credit.credited_tokens` counts the
    tokens selected to carry the advantage, even when the advantage itself is 0.
    """
    labels: list[TraceLabels] = [
        trace_labels(
            trace_id=item.trace_id, text=item.text, token_spans=item.token_spans, review=item.review, answer_span=item.answer_span,
            blame_contributions=config.blame_contributions, blame_dependents=config.blame_dependents,
        )
        for item in items
    ]  # fmt: skip
    batch = apply_policy(labels, [item.sequence_advantage for item in items], config)
    credits = []
    for b, item in enumerate(items):
        n = len(item.token_spans)
        advantages = batch.row(b, n)
        units = list(item.review.units) if item.review is not None else []
        credits.append(
            Credit(
                trace_id=item.trace_id,
                policy=config.policy,
                sequence_advantage=item.sequence_advantage,
                token_advantages=advantages,
                credited_tokens=int(batch.counted[b, :n].sum()),
                fallback=batch.fallbacks[b],
                unit_advantages=unit_sums(item.text, item.token_spans, units, advantages),
            )
        )
    return credits


def compute_credit(
    *,
    trace_id: str,
    text: str,
    token_spans: list[tuple[int, int]],
    review: Review | Consensus | None,
    sequence_advantage: float,
    answer_span: tuple[int, int] | None,
    config: CreditConfig,
) -> Credit:
    """Per-token advantages for one trace's N = ``len(token_spans)`` completion tokens
    (`compute_credits` for a batch of one)."""
    item = CreditInput(
        trace_id=trace_id, text=text, token_spans=token_spans, review=review, sequence_advantage=sequence_advantage, answer_span=answer_span
    )
    return compute_credits([item], config)[0]


def credit_statistics(credits: list[Credit]) -> dict[str, float]:
    """Aggregate figures over a batch of credits, for logging.

    ``fraction_credited``: credited tokens / all tokens; ``fallbacks``: credits that fell back;
    ``mean_abs_advantage``: mean |token advantage| over all tokens; ``traces`` and ``tokens``.
    """
    tokens = sum(len(c.token_advantages) for c in credits)
    return {
        "traces": float(len(credits)),
        "tokens": float(tokens),
        "fraction_credited": sum(c.credited_tokens for c in credits) / tokens if tokens else 0.0,
        "fallbacks": float(sum(1 for c in credits if c.fallback is not None)),
        "mean_abs_advantage": (sum(abs(a) for c in credits for a in c.token_advantages) / tokens if tokens else 0.0),
    }
