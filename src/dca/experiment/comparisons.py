"""Seed-level comparisons to the baseline arm: paired t-intervals, Holm, MDE, non-inferiority.

The unit of replication of an experiment is the training seed: every arm of one seed starts
from the same checkpoint and sees its problems in the same order. With fewer than about ten
seeds, a bootstrap over seeds has few distinct outcomes and under-covers (with two seeds it
has three), so each difference to the baseline is computed per seed (the arm's figure minus
the baseline's, on the problems both answered under that seed) and summarized by a paired t
with n - 1 degrees of freedom (`dca.experiment.stats.paired_t`):

- the 95 % t-interval and the two-sided p of "no difference";
- the MDE per arm and measure: (t_0.975 + t_0.80) x SE with n - 1 df (never averaged over arms);
- accuracy's non-inferiority against a margin of `NON_INFERIORITY_MARGIN` (3 points): the
  one-sided 95 % lower bound must lie above -3 points;
- Holm-adjusted p-values over every comparison the report makes (the count is stated).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .stats import NON_INFERIORITY_MARGIN, holm, nanmean, paired_t, ratio_of_sums, relative_difference

__all__ = ["MEASURES", "adjust_for_multiplicity", "paired_comparisons", "per_seed"]

#: The paired measures, their statistic over (seeds x problems) matrices, and their unit.
MEASURES = ("accuracy", "irrelevant_share", "cot_tokens_rel")


def per_seed(statistic: Callable[..., float], *matrices: np.ndarray) -> list[float]:
    """`statistic` of each seed's row (the matrices are seeds x problems, paired cell by cell)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(statistic(*(m[i : i + 1] for m in matrices))) for i in range(matrices[0].shape[0])]


def paired_comparisons(matrices: Callable[[str, str], np.ndarray], arm: str, baseline: str) -> dict[str, Any]:
    """The seed-level paired statistics of `arm` minus `baseline`; `matrices(who, key)` gives a
    seeds x problems matrix of a `TraceMeasure` field (or ``correct``) over the paired seeds."""
    a, b = matrices(arm, "correct"), matrices(baseline, "correct")
    accuracy = per_seed(lambda x, y: nanmean(x - y), a, b)
    share = per_seed(
        lambda ia, la, ib, lb: ratio_of_sums(ia, la) - ratio_of_sums(ib, lb),
        *(matrices(who, k) for who in (arm, baseline) for k in ("irrelevant_tokens", "labelled_tokens")),
    )
    cot = per_seed(relative_difference, matrices(arm, "cot_tokens"), matrices(baseline, "cot_tokens"))
    return {
        "accuracy": {**paired_t(accuracy, margin=NON_INFERIORITY_MARGIN), "per_seed": accuracy},
        "irrelevant_share": {**paired_t(share), "per_seed": share},
        "cot_tokens_rel": {**paired_t(cot), "per_seed": cot},
    }


def adjust_for_multiplicity(tables: dict[str, list[dict]]) -> int:
    """Holm-adjust every paired p-value of the report together (``p_holm`` beside ``p``); the
    number of comparisons made (those with a p-value)."""
    slots = [row["paired"][m] for rows in tables.values() for row in rows if row.get("paired") for m in MEASURES]
    adjusted = holm([s["p"] for s in slots])
    for slot, p in zip(slots, adjusted):
        slot["p_holm"] = p
    return sum(p is not None for p in adjusted)
