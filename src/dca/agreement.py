"""Agreement between reviewers, and each reviewer's quality against a ground truth.

The figures an annotation study reports, computed over the reviews of a set of traces:

- **Contribution labels, per unit.** Each trace's reviews are projected onto their common
  units (`dca.consensus.common_units`); a reviewer's label of a unit is the contribution of
  the step covering it. A unit that a reviewer left uncovered, or a failed review, is a
  missing value (failed reviews are counted per reviewer). Units are weighted by their
  number of *tokens*; reviews carry no tokenizer, so a token here is a word or a single
  punctuation mark (``\\w+|[^\\w\\s]``), a tokenizer-free proxy that keeps a long unit from
  counting as much as a two-word one. ``weighting="units"`` counts every unit once.
  - Krippendorff's α (nominal), computed by the `krippendorff` package; each unit enters
    with multiplicity equal to its weight, which is exactly α of the weighted coincidence
    matrix. α uses every unit with two or more labels.
  - Fleiss' κ (Fleiss 1971), over the units that *every* reviewer labelled (κ needs the same
    number of ratings per unit), also weighted; with the per-label κ_j of the same paper.
  - Observed agreement: the weighted share of agreeing pairs among all pairs of labels of a
    unit (Krippendorff's 1 - D_o for nominal data).
- **Step boundaries.** Krippendorff's unitized α (α_U) is not implemented. Instead, every
  gap between two consecutive common units is an item that each reviewer codes 1 (one of its
  steps ends there, or a step meets an uncovered stretch) or 0 (the same step, or uncovered
  text, continues), and the figure is nominal α over those binary codes (gaps unweighted).
  A reviewer whose own units have no boundary at a gap codes 0 there.
- **Pairs of reviewers**: per pair, observed label agreement and Cohen's κ over the units
  both labelled (token-weighted), and observed boundary agreement over the gaps.
- **Breakdowns**: the label figures restricted to the traces of one problem domain, of one
  outcome (``solved`` = the trace's outcome is ``correct``, else ``failed``; needs the
  traces), and per label: Fleiss' κ_j, and the label's specific agreement (of the times
  it was given, the share of the unit's other labels that agree with it).

**Two reviewers compared** (`compare_reviewers`, ``dca agreement --compare A,B``): both
against the truth on the traces all three reviewed, each figure (α with the truth, useful,
error and first-error F1) for A and B and the difference B - A with a 95 % percentile
interval from a bootstrap over those traces (paired: a draw resamples traces, not reviews).

**Against a ground truth** (`reviewer_quality`): one reviewer's labels (the oracle on
synthetic problems, the reference reviewer on GSM8K) are the truth. For each other
reviewer, on the traces where both reviews succeeded: token-weighted precision, recall and
F1 of the units it calls *useful* (`USEFUL_CONTRIBUTIONS`) and of the units it calls
``error``; an uncovered unit is a negative. And a first-error score in the style of
ProcessBench (Zheng et al., 2024): on each trace the truth marks with an error, whether the
reviewer's earliest ``error`` unit is exactly the truth's earliest (common units, so the
index is comparable across segmentations); on each trace the truth marks without one,
whether the reviewer marks none either; the score is the harmonic mean of the two
accuracies. ProcessBench splits traces by the truth's label, not by the outcome, and so
does this function (a trace can fail without an erroneous step, e.g. a format failure).

Everything here is a pure function over records; it never imports torch.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from .consensus import common_units, group_reviews, project_review
from .records import CONTRIBUTIONS, USEFUL_CONTRIBUTIONS, Problem, Review, Trace

__all__ = [
    "ProjectedTrace",
    "agreement_report",
    "cohen_kappa",
    "compare_reviewers",
    "fleiss_kappa",
    "krippendorff_alpha",
    "observed_agreement",
    "project_traces",
    "reviewer_quality",
    "token_count",
]

_TOKEN = re.compile(r"\w+|[^\w\s]")
WEIGHTINGS = ("tokens", "units")

#: One item (unit or gap) as the coders saw it: coder -> label; missing coders are absent.
Item = dict[str, str]


def token_count(text: str) -> int:
    """Words plus punctuation marks: the tokenizer-free proxy used to weight units."""
    return len(_TOKEN.findall(text))


# ---------------------------------------------------------------------------------------------
# Coefficients over generic items (tested against published examples)


def _weights(items: list[Item], weights: list[int] | None) -> list[int]:
    if weights is None:
        return [1] * len(items)
    if len(weights) != len(items):
        raise ValueError(f"{len(weights)} weights for {len(items)} items")
    if any(w < 0 or int(w) != w for w in weights):
        raise ValueError("weights must be non-negative integers")
    return [int(w) for w in weights]


def krippendorff_alpha(items: list[Item], weights: list[int] | None = None) -> float | None:
    """Nominal Krippendorff's α; an item of weight w counts as w identical items.

    None where α is undefined: no item has two labels, or only one label value occurs
    (there is no disagreement to expect).
    """
    import krippendorff  # heavy: krippendorff and numpy load only when alpha is computed
    import numpy as np

    weights = _weights(items, weights)
    pairable = [(item, w) for item, w in zip(items, weights) if len(item) >= 2 and w > 0]
    values = sorted({label for item, _ in pairable for label in item.values()})
    if len(values) < 2:
        return None
    column = {v: j for j, v in enumerate(values)}
    counts = np.zeros((len(pairable), len(values)))
    for row, (item, _) in enumerate(pairable):
        for label in item.values():
            counts[row, column[label]] += 1
    counts = np.repeat(counts, [w for _, w in pairable], axis=0)
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


@dataclass(kw_only=True)
class FleissKappa:
    kappa: float | None
    """Fleiss' κ; None where undefined (no complete item, or one category only)."""
    category_kappas: dict[str, float | None]
    """Per category, Fleiss' κ_j (None for a category no rater used, or every rater always used)."""
    items: int
    """Complete items used (each with all `raters` labels)."""
    raters: int


def fleiss_kappa(items: list[Item], raters: int | None = None, weights: list[int] | None = None) -> FleissKappa:
    """Fleiss' κ (Fleiss 1971) over the items with exactly `raters` labels (default: the most
    labels any item has); items of weight w count w times."""
    weights = _weights(items, weights)
    n = raters if raters is not None else max((len(item) for item in items), default=0)
    complete = [(Counter(item.values()), w) for item, w in zip(items, weights) if len(item) == n and w > 0]
    total = sum(w for _, w in complete)
    categories = sorted({c for counts, _ in complete for c in counts})
    if n < 2 or total == 0:
        return FleissKappa(kappa=None, category_kappas={}, items=len(complete), raters=n)
    p = {c: sum(w * counts[c] for counts, w in complete) / (total * n) for c in categories}
    p_bar = sum(w * (sum(x * x for x in counts.values()) - n) for counts, w in complete) / (total * n * (n - 1))
    p_e = sum(v * v for v in p.values())
    kappa = None if math.isclose(p_e, 1.0) else (p_bar - p_e) / (1 - p_e)
    category_kappas: dict[str, float | None] = {}
    for c in categories:
        spread = p[c] * (1 - p[c])
        disagreement = sum(w * counts[c] * (n - counts[c]) for counts, w in complete)
        category_kappas[c] = None if spread == 0 else 1 - disagreement / (total * n * (n - 1) * spread)
    return FleissKappa(kappa=kappa, category_kappas=category_kappas, items=len(complete), raters=n)


def cohen_kappa(pairs: list[tuple[str, str]], weights: list[int] | None = None) -> float | None:
    """Cohen's κ of two raters' labels (one pair per item); None where undefined."""
    weights = _weights([{} for _ in pairs], weights)
    total = sum(weights)
    if total == 0:
        return None
    observed = sum(w for (a, b), w in zip(pairs, weights) if a == b) / total
    first, second = Counter(), Counter()
    for (a, b), w in zip(pairs, weights):
        first[a] += w
        second[b] += w
    expected = sum(first[c] * second[c] for c in first) / (total * total)
    return None if math.isclose(expected, 1.0) else (observed - expected) / (1 - expected)


def observed_agreement(items: list[Item], weights: list[int] | None = None) -> float | None:
    """The weighted share of agreeing pairs among the pairs of labels within each item,
    each item's pairs weighted by w / (m - 1) as in Krippendorff's coincidence matrix."""
    weights = _weights(items, weights)
    agree = pairs = 0.0
    for item, w in zip(items, weights):
        m = len(item)
        if m < 2:
            continue
        counts = Counter(item.values())
        agree += w * sum(x * (x - 1) for x in counts.values()) / (m - 1)
        pairs += w * m
    return agree / pairs if pairs else None


def specific_agreement(items: list[Item], label: str, weights: list[int] | None = None) -> float | None:
    """Specific agreement on `label`: of the times it was given (in items with two or more
    labels), the weighted share of the other labels of the same item that agree with it,
    o_cc / n_c in Krippendorff's coincidence matrix; 2a / (2a + b + c) for two raters."""
    weights = _weights(items, weights)
    agree = given = 0.0
    for item, w in zip(items, weights):
        m = len(item)
        if m < 2:
            continue
        x = sum(1 for v in item.values() if v == label)
        agree += w * x * (x - 1) / (m - 1)
        given += w * x
    return agree / given if given else None


# ---------------------------------------------------------------------------------------------
# Reviews -> items


@dataclass(kw_only=True)
class ProjectedTrace:
    """The reviews of one trace on their common units."""

    trace_id: str
    unit_texts: list[str]
    weights: list[int]
    """Per unit: its token count (or 1 under ``weighting="units"``)."""
    labels: dict[str, list[str | None]] = field(default_factory=dict)
    """Successful reviewer -> per unit, its contribution label (None: uncovered)."""
    boundaries: dict[str, list[str]] = field(default_factory=dict)
    """Successful reviewer -> per gap between units i-1 and i (i = 1..n-1), ``"1"`` where a
    step boundary lies, else ``"0"``."""
    failed: list[str] = field(default_factory=list)
    """Reviewers whose review of this trace failed."""

    def unit_items(self, reviewers: Iterable[str] | None = None) -> list[Item]:
        names = list(self.labels) if reviewers is None else [r for r in reviewers if r in self.labels]
        return [
            {r: self.labels[r][i] for r in names if self.labels[r][i] is not None}  # type: ignore[misc]
            for i in range(len(self.unit_texts))
        ]

    def gap_items(self, reviewers: Iterable[str] | None = None) -> list[Item]:
        names = list(self.boundaries) if reviewers is None else [r for r in reviewers if r in self.boundaries]
        return [{r: self.boundaries[r][g] for r in names} for g in range(max(len(self.unit_texts) - 1, 0))]

    def first_error(self, reviewer: str) -> int | None:
        return next((i for i, label in enumerate(self.labels[reviewer]) if label == "error"), None)


def project_traces(reviews: list[Review], *, weighting: str = "tokens") -> list[ProjectedTrace]:
    """Each trace's reviews on their common units, traces in order of first appearance.

    Raises ValueError when a trace's reviews spell different texts or a reviewer reviewed a
    trace twice.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    projected = []
    for trace_id, group in group_reviews(reviews).items():
        names = Counter(r.reviewer for r in group)
        twice = sorted(n for n, c in names.items() if c > 1)
        if twice:
            raise ValueError(f"trace {trace_id}: reviewer(s) {twice} reviewed it more than once")
        usable = sorted((r for r in group if r.status == "ok"), key=lambda r: r.reviewer)
        if len({"".join(u.text for u in r.units) for r in usable}) > 1:
            raise ValueError(f"trace {trace_id}: the reviews' units spell different texts")
        units = common_units(usable)
        trace = ProjectedTrace(
            trace_id=trace_id,
            unit_texts=[u.text for u in units],
            weights=[token_count(u.text) if weighting == "tokens" else 1 for u in units],
            failed=sorted(r.reviewer for r in group if r.status != "ok"),
        )
        for review in usable:
            step_of = project_review(review, units)
            trace.labels[review.reviewer] = [
                None if s is None else review.steps[s].contribution for s in step_of
            ]
            trace.boundaries[review.reviewer] = [
                "1" if step_of[i] != step_of[i - 1] and (step_of[i] is not None or step_of[i - 1] is not None) else "0"
                for i in range(1, len(units))
            ]
        projected.append(trace)
    return projected


def _label_figures(traces: list[ProjectedTrace], reviewers: list[str]) -> dict:
    items = [item for t in traces for item in t.unit_items(reviewers)]
    weights = [w for t in traces for w in t.weights]
    fleiss = fleiss_kappa(items, raters=len(reviewers), weights=weights)
    return {
        "traces": len(traces),
        "units": sum(1 for item in items if len(item) >= 2),
        "alpha": krippendorff_alpha(items, weights),
        "kappa": fleiss.kappa,
        "kappa_units": fleiss.items,
        "observed": observed_agreement(items, weights),
    }


def agreement_report(
    reviews: list[Review],
    *,
    traces: list[Trace] | None = None,
    problems: list[Problem] | None = None,
    truth: str | None = None,
    weighting: str = "tokens",
    compare: tuple[str, str] | None = None,
    draws: int = 2000,
) -> dict:
    """All agreement figures as a JSON-ready dict (see the module docstring).

    `traces` give outcomes (and, with `problems`, domains) for the breakdowns; `truth` names
    the reviewer whose labels are the ground truth for `reviewer_quality`; `compare` (A, B),
    with a truth, adds ``comparison``: `compare_reviewers` with `draws` bootstrap draws.
    Undefined figures are None. Raises ValueError on inconsistent reviews or an unknown
    truth reviewer.
    """
    projected = project_traces(reviews, weighting=weighting)
    reviewers = sorted({r.reviewer for r in reviews})
    failed = Counter(r.reviewer for r in reviews if r.status != "ok")
    report: dict = {
        "traces": len(projected),
        "reviews": len(reviews),
        "reviewers": reviewers,
        "failed_reviews": {r: failed.get(r, 0) for r in reviewers},
        "weighting": weighting,
        "labels": _label_figures(projected, reviewers),
    }
    gap_items = [item for t in projected for item in t.gap_items(reviewers)]
    report["boundaries"] = {
        "gaps": sum(1 for item in gap_items if len(item) >= 2),
        "alpha": krippendorff_alpha(gap_items),
        "observed": observed_agreement(gap_items),
    }

    pairs = []
    for a, b in itertools.combinations(reviewers, 2):
        labelled, weights = [], []
        for t in projected:
            if a in t.labels and b in t.labels:
                for i, w in enumerate(t.weights):
                    la, lb = t.labels[a][i], t.labels[b][i]
                    if la is not None and lb is not None:
                        labelled.append((la, lb))
                        weights.append(w)
        gaps = [item for t in projected for item in t.gap_items([a, b]) if len(item) == 2]
        pairs.append(
            {
                "reviewers": [a, b],
                "units": len(labelled),
                "observed": (sum(w for (x, y), w in zip(labelled, weights) if x == y) / sum(weights)) if sum(weights) else None,
                "kappa": cohen_kappa(labelled, weights),
                "boundary_observed": observed_agreement(gaps),
            }
        )
    report["pairs"] = pairs

    items = [item for t in projected for item in t.unit_items(reviewers)]
    weights = [w for t in projected for w in t.weights]
    fleiss = fleiss_kappa(items, raters=len(reviewers), weights=weights)
    report["by_label"] = {
        label: {
            "kappa": fleiss.category_kappas.get(label),
            "specific_agreement": specific_agreement(items, label, weights),
            "share": _label_share(items, weights, label),
        }
        for label in CONTRIBUTIONS
    }

    if traces is not None:
        by_id = {t.id: t for t in traces}
        domains = {p.id: p.domain for p in problems or []}
        outcome_of = {
            t.trace_id: ("solved" if by_id[t.trace_id].outcome == "correct" else "failed") if t.trace_id in by_id else "unknown"
            for t in projected
        }
        report["by_outcome"] = _breakdown(projected, reviewers, outcome_of)
        if problems is not None:
            domain_of = {
                t.trace_id: domains.get(by_id[t.trace_id].problem_id, "unknown") if t.trace_id in by_id else "unknown"
                for t in projected
            }
            report["by_domain"] = _breakdown(projected, reviewers, domain_of)
    if truth is not None:
        report["truth"] = reviewer_quality(projected, truth)
        if compare is not None:
            report["comparison"] = compare_reviewers(projected, truth, *compare, draws=draws)
    report["warnings"] = agreement_warnings(report, projected)
    return report


def agreement_warnings(report: dict, projected: list[ProjectedTrace]) -> list[str]:
    """Why figures of `report` could not be computed (they show as n/a), one line each."""
    warnings = []
    reviewers, failed = report["reviewers"], report["failed_reviews"]
    for name in reviewers:
        reviewed = sum(1 for t in projected if name in t.labels or name in t.failed)
        if reviewed and failed[name] == reviewed:
            warnings.append(f"every review by {name} failed ({reviewed}): it adds no label to any figure (does it support these problems?)")
    usable = [r for r in reviewers if any(r in t.labels for t in projected)]
    labels = report["labels"]
    if len(usable) < 2:
        warnings.append(
            f"{len(usable)} reviewer(s) with usable reviews ({', '.join(usable) or 'none'}): agreement needs two or more; "
            "every agreement figure is n/a"
        )
    elif labels["units"] == 0:
        warnings.append("no unit was labelled by two reviewers (each trace's usable reviews cover different units): alpha, kappa and observed agreement are n/a")
    else:
        if labels["alpha"] is None:
            warnings.append("every label given is the same one: alpha and kappa are undefined (n/a) when only one label occurs")
        if labels["kappa"] is None and labels["kappa_units"] == 0:
            warnings.append(f"Fleiss' kappa is n/a: no unit was labelled by all {len(reviewers)} reviewers")
    truth = report.get("truth")
    if truth is not None:
        for name, figures in truth["reviewers"].items():
            if figures["traces"] == 0:
                warnings.append(f"{name} against the truth ({truth['reviewer']}): no trace has a usable review by both, so its quality figures are n/a")
            elif figures["first_error"]["f1"] is None:
                missing = "erroneous" if not figures["first_error"]["erroneous_traces"] else "error-free"
                warnings.append(f"{name}: first-error F1 is n/a: the truth marks no {missing} trace among the {figures['traces']} compared")
    return warnings


def _label_share(items: list[Item], weights: list[int], label: str) -> float | None:
    total = sum(w * len(item) for item, w in zip(items, weights))
    used = sum(w * sum(1 for v in item.values() if v == label) for item, w in zip(items, weights))
    return used / total if total else None


def _breakdown(traces: list[ProjectedTrace], reviewers: list[str], key_of: dict[str, str]) -> dict:
    groups: dict[str, list[ProjectedTrace]] = {}
    for t in traces:
        groups.setdefault(key_of[t.trace_id], []).append(t)
    return {key: _label_figures(group, reviewers) for key, group in sorted(groups.items())}


# ---------------------------------------------------------------------------------------------
# Quality against a ground truth


def _prf(tp: float, fp: float, fn: float) -> dict:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1}


def reviewer_quality(traces: list[ProjectedTrace], truth: str) -> dict:
    """Each reviewer against the `truth` reviewer (see the module docstring)."""
    names = sorted({r for t in traces for r in [*t.labels, *t.failed]})
    if truth not in names:
        raise ValueError(f"no reviews by {truth!r} to use as the truth; reviewers are {', '.join(names) or 'none'}")
    result: dict = {"reviewer": truth, "reviewers": {}}
    for name in names:
        if name == truth:
            continue
        counts = {"useful": [0.0, 0.0, 0.0], "error": [0.0, 0.0, 0.0]}  # tp, fp, fn
        erroneous = erroneous_hits = correct = correct_hits = 0
        compared = failed = 0
        for t in traces:
            if name in t.failed:
                failed += 1
            if truth not in t.labels or name not in t.labels:
                continue
            compared += 1
            for i, w in enumerate(t.weights):
                true_label, label = t.labels[truth][i], t.labels[name][i]
                for key, positive in (("useful", USEFUL_CONTRIBUTIONS), ("error", ("error",))):
                    said, real = label in positive, true_label in positive
                    counts[key][0] += w * (said and real)
                    counts[key][1] += w * (said and not real)
                    counts[key][2] += w * (real and not said)
            true_first, first = t.first_error(truth), t.first_error(name)
            if true_first is None:
                correct += 1
                correct_hits += first is None
            else:
                erroneous += 1
                erroneous_hits += first == true_first
        error_accuracy = erroneous_hits / erroneous if erroneous else None
        correct_accuracy = correct_hits / correct if correct else None
        if error_accuracy is None or correct_accuracy is None:
            first_error_f1 = None
        elif error_accuracy + correct_accuracy == 0:
            first_error_f1 = 0.0
        else:
            first_error_f1 = 2 * error_accuracy * correct_accuracy / (error_accuracy + correct_accuracy)
        result["reviewers"][name] = {
            "traces": compared,
            "failed": failed,
            "useful": _prf(*counts["useful"]),
            "error": _prf(*counts["error"]),
            "first_error": {
                "erroneous_traces": erroneous,
                "erroneous_accuracy": error_accuracy,
                "correct_traces": correct,
                "correct_accuracy": correct_accuracy,
                "f1": first_error_f1,
            },
        }
    return result


#: The figures `compare_reviewers` pairs, each a function of (traces, truth, reviewer,
#: reviewer_quality's entry for the reviewer).
COMPARED_FIGURES = ("alpha", "useful_f1", "error_f1", "first_error_f1")


def _compared(traces: list[ProjectedTrace], truth: str, names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    quality = reviewer_quality(traces, truth)["reviewers"]
    weights = [w for t in traces for w in t.weights]
    out = {}
    for name in names:
        q = quality[name]
        items = [item for t in traces for item in t.unit_items([truth, name])]
        out[name] = {
            "alpha": krippendorff_alpha(items, weights),  # the reviewer's labels and the truth's, two coders
            "useful_f1": q["useful"]["f1"],
            "error_f1": q["error"]["f1"],
            "first_error_f1": q["first_error"]["f1"],
        }
    return out


def compare_reviewers(traces: list[ProjectedTrace], truth: str, a: str, b: str, *, draws: int = 2000, seed: int = 0) -> dict:
    """Reviewer `b` against reviewer `a`, each scored against `truth`, paired: on the traces
    that all three reviewed successfully, each `COMPARED_FIGURES` figure for `a` and for `b`
    (α of the reviewer's labels with the truth's as two coders; useful, error and first-error
    F1 as in `reviewer_quality`) and the difference b - a with a 95 % percentile interval
    from a bootstrap over those traces (both reviewers resampled together; an interval is
    None when fewer than half of the `draws` define the difference)."""
    names = sorted({r for t in traces for r in [*t.labels, *t.failed]})
    for name in (truth, a, b):
        if name not in names:
            raise ValueError(f"no reviews by {name!r}; reviewers are {', '.join(names) or 'none'}")
    if len({truth, a, b}) < 3:
        raise ValueError(f"compare two reviewers other than the truth (got {a!r}, {b!r}, truth {truth!r})")
    shared = [t for t in traces if all(n in t.labels for n in (truth, a, b))]
    result: dict = {"truth": truth, "a": a, "b": b, "traces": len(shared), "draws": draws, "seed": seed, "figures": {}}
    if not shared:
        result["figures"] = {f: {"a": None, "b": None, "difference": None, "low": None, "high": None} for f in COMPARED_FIGURES}
        return result

    def differences(sample: list[ProjectedTrace]) -> tuple[dict, dict[str, float | None]]:
        figures = _compared(sample, truth, (a, b))
        diff = {f: None if figures[a][f] is None or figures[b][f] is None else figures[b][f] - figures[a][f] for f in COMPARED_FIGURES}
        return figures, diff

    figures, value = differences(shared)
    rng = random.Random(seed)
    drawn: dict[str, list[float]] = {f: [] for f in COMPARED_FIGURES}
    for _ in range(draws):
        _, diff = differences([shared[rng.randrange(len(shared))] for _ in shared])
        for f, d in diff.items():
            if d is not None and math.isfinite(d):
                drawn[f].append(d)
    for f in COMPARED_FIGURES:
        samples = sorted(drawn[f])
        low = high = None
        if value[f] is not None and samples and len(samples) >= draws / 2:
            low, high = samples[int(0.025 * len(samples))], samples[max(int(0.975 * len(samples)) - 1, 0)]
        result["figures"][f] = {"a": figures[a][f], "b": figures[b][f], "difference": value[f], "low": low, "high": high}
    return result


# ---------------------------------------------------------------------------------------------
# Printing


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_report(report: dict) -> list[tuple[str, list[tuple[str, ...]]]]:
    """The report as titled tables of strings (rows; the first row is the header)."""
    labels = report["labels"]
    overall = [
        ("figure", "value"),
        ("traces / reviews", f"{report['traces']} / {report['reviews']}"),
        ("failed reviews", ", ".join(f"{r}: {n}" for r, n in report["failed_reviews"].items())),
        ("Krippendorff's alpha (labels)", _fmt(labels["alpha"])),
        (f"Fleiss' kappa (labels; {labels['kappa_units']} complete units)", _fmt(labels["kappa"])),
        ("observed label agreement", _fmt(labels["observed"])),
        (f"boundary alpha ({report['boundaries']['gaps']} gaps)", _fmt(report["boundaries"]["alpha"])),
        ("observed boundary agreement", _fmt(report["boundaries"]["observed"])),
    ]
    tables = [(f"agreement (units weighted by {report['weighting']})", overall)]
    pairs = [("pair", "units", "observed", "Cohen's kappa", "boundaries")]
    for p in report["pairs"]:
        pairs.append((" / ".join(p["reviewers"]), str(p["units"]), _fmt(p["observed"]), _fmt(p["kappa"]), _fmt(p["boundary_observed"])))
    tables.append(("pairs of reviewers", pairs))
    for key, title in (("by_domain", "by domain"), ("by_outcome", "by outcome")):
        if key in report:
            rows = [(title.split()[-1], "traces", "alpha", "kappa", "observed")]
            for name, f in report[key].items():
                rows.append((name, str(f["traces"]), _fmt(f["alpha"]), _fmt(f["kappa"]), _fmt(f["observed"])))
            tables.append((title, rows))
    rows = [("label", "share", "Fleiss kappa_j", "specific agreement")]
    for label, f in report["by_label"].items():
        rows.append((label, _fmt(f["share"]), _fmt(f["kappa"]), _fmt(f["specific_agreement"])))
    tables.append(("by label", rows))
    if "truth" in report:
        judged = report["truth"]["reviewers"]
        rows = [("figure", *judged)]
        rows.append(("traces compared", *(str(q["traces"]) for q in judged.values())))
        for kind in ("useful", "error"):
            for figure in ("precision", "recall", "f1"):
                rows.append((f"{kind} units: {figure}", *(_fmt(q[kind][figure]) for q in judged.values())))
        rows.append(("first error: exact on erroneous", *(_fmt(q["first_error"]["erroneous_accuracy"]) for q in judged.values())))
        rows.append(("first error: none on correct", *(_fmt(q["first_error"]["correct_accuracy"]) for q in judged.values())))
        rows.append(("first-error F1", *(_fmt(q["first_error"]["f1"]) for q in judged.values())))
        tables.append((f"against the truth ({report['truth']['reviewer']})", rows))
    if "comparison" in report:
        c = report["comparison"]
        rows = [("figure (vs the truth)", c["a"], c["b"], f"{c['b']} - {c['a']}", "95% interval")]
        for name, f in c["figures"].items():
            interval = f"[{f['low']:+.3f}, {f['high']:+.3f}]" if f["low"] is not None else "n/a"
            difference = "n/a" if f["difference"] is None else f"{f['difference']:+.3f}"
            rows.append((name, _fmt(f["a"]), _fmt(f["b"]), difference, interval))
        tables.append((f"{c['b']} against {c['a']}, paired on {c['traces']} traces ({c['draws']} bootstrap draws)", rows))
    return tables
