"""Credit: turn a review and a sequence advantage into per-token advantages.

Three parts, read in this order:

- `dca.credit.alignment`: which characters each token spells (`token_char_spans`);
- `dca.credit.labels`: each token's unit and each unit's label (`TraceLabels`);
- `dca.credit.policies`: the registry of credit policies (`POLICIES`), pure functions from a
  batch's labels and sequence advantages to a (B, T) array of token advantages, and
  `CreditConfig`; every policy is described there and in docs/credit-policies.md;
- `dca.credit.compute`: `compute_credit` / `compute_credits` assemble `Credit` records.

A unit labelled ``unverified`` (a reviewer could not check it, `dca.records.UNVERIFIED`) is
treated as a unit without a label: never credited, never blamed, and `CreditConfig` refuses it
among the useful or blamed contributions.

Torch-free.
"""

from .alignment import token_char_spans
from .compute import CreditInput, compute_credit, compute_credits, credit_statistics
from .labels import ANSWER, TraceLabels, trace_labels
from .policies import (
    BLAME_CONTRIBUTIONS,
    DEFAULT_MAX_WEIGHT,
    DISPUTED_CHOICES,
    NEGATIVE_CHOICES,
    POLICIES,
    SIGNED_POLICIES,
    CreditBatch,
    CreditConfig,
    CreditPolicy,
    apply_policy,
)

__all__ = [
    "ANSWER",
    "BLAME_CONTRIBUTIONS",
    "DEFAULT_MAX_WEIGHT",
    "DISPUTED_CHOICES",
    "NEGATIVE_CHOICES",
    "POLICIES",
    "SIGNED_POLICIES",
    "CreditBatch",
    "CreditConfig",
    "CreditInput",
    "CreditPolicy",
    "TraceLabels",
    "apply_policy",
    "compute_credit",
    "compute_credits",
    "credit_statistics",
    "token_char_spans",
    "trace_labels",
]
