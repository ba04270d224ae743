"""Tests for dca.agreement: published worked examples, reviews as coders, reviewer quality
against a truth, and agreement falling as a reviewer's noise rises."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dca.agreement import (
    agreement_report,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    observed_agreement,
    project_traces,
    reviewer_quality,
    specific_agreement,
)
from dca.records import CONTRIBUTIONS, Review, Step, Unit
from gold_traces import gold_traces, review_all, three_reviewers

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1-5, None = missing. Published: nominal alpha = 0.743.
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}

# Fleiss (1971), "Measuring nominal scale agreement among many raters": 30 patients, 6
# psychiatrists each, 5 diagnoses (1 depression, 2 personality disorder, 3 schizophrenia,
# 4 neurosis, 5 other); table as in R irr::diagnoses. Published: kappa = .430 and per
# category .245 .245 .520 .471 .566.
FLEISS_1971 = [
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5], [2, 2, 2, 4, 4, 4],
    [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4], [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5],
    [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4], [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5],
    [3, 3, 3, 3, 3, 5], [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4], [1, 4, 4, 4, 4, 5],
    [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4], [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
]  # fmt: skip
FLEISS_CATEGORY_KAPPAS = [0.245, 0.245, 0.520, 0.471, 0.566]


def krippendorff_items():
    return [
        {coder: str(values[u]) for coder, values in KRIPPENDORFF_2011.items() if values[u] is not None}
        for u in range(12)
    ]


def fleiss_items():
    return [{f"rater{r}": str(v) for r, v in enumerate(row)} for row in FLEISS_1971]


def test_krippendorff_2011_example():
    assert round(krippendorff_alpha(krippendorff_items()), 3) == 0.743


def test_fleiss_1971_example():
    result = fleiss_kappa(fleiss_items())
    assert round(result.kappa, 3) == 0.430
    assert [round(result.category_kappas[str(c)], 3) for c in range(1, 6)] == FLEISS_CATEGORY_KAPPAS
    assert result.items == 30 and result.raters == 6


def test_cohen_kappa_worked_example():
    # 50 grant proposals, two readers: 20 both yes, 15 both no, 5 yes/no, 10 no/yes:
    # p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4.
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a")] * 3) is None  # one category: chance agreement is 1


def test_observed_and_specific_agreement_agree_with_alpha():
    items = krippendorff_items()
    observed = observed_agreement(items)
    # nominal alpha = 1 - (1 - observed) / (1 - expected), expected from the value totals
    values = [v for item in items if len(item) >= 2 for v in item.values()]
    n = len(values)
    expected = sum(values.count(c) * (values.count(c) - 1) for c in set(values)) / (n * (n - 1))
    assert 1 - (1 - observed) / (1 - expected) == pytest.approx(krippendorff_alpha(items))
    # two raters: specific agreement is 2a / (2a + b + c)
    two = [{"x": "p", "y": "p"}] * 3 + [{"x": "p", "y": "q"}] * 2 + [{"x": "q", "y": "p"}] + [{"x": "q", "y": "q"}] * 4
    assert specific_agreement(two, "p") == pytest.approx(6 / (6 + 2 + 1))


@settings(max_examples=40, deadline=None)
@given(
    items=st.lists(st.dictionaries(st.sampled_from("abc"), st.sampled_from("xyz"), min_size=2), min_size=2, max_size=8),
    weights=st.data(),
)
def test_a_weight_counts_as_repeated_items(items, weights):
    w = weights.draw(st.lists(st.integers(0, 3), min_size=len(items), max_size=len(items)))
    repeated = [item for item, k in zip(items, w) for _ in range(k)]
    for weighted, plain in [
        (krippendorff_alpha(items, w), krippendorff_alpha(repeated)),
        (fleiss_kappa(items, raters=2, weights=w).kappa, fleiss_kappa(repeated, raters=2).kappa),
        (observed_agreement(items, w), observed_agreement(repeated)),
    ]:
        assert (weighted is None) == (plain is None)
        if weighted is not None:
            assert weighted == pytest.approx(plain)


# ---------------------------------------------------------------------------------------------
# Reviews as coders


def textbook_reviews(data: dict[str, list[int | None]]) -> list[Review]:
    """Each coder a reviewer of one trace whose units are the items; value v -> CONTRIBUTIONS[v - 1]."""
    n = len(next(iter(data.values())))
    units = [Unit(index=i, start=3 * i, end=3 * i + 3, text=f"u{i:02d}"[:3]) for i in range(n)]
    reviews = []
    for coder, values in data.items():
        steps = [
            Step(index=len([x for x in values[:u] if x is not None]), first_unit=u, last_unit=u,
                 function="other", contribution=CONTRIBUTIONS[v - 1])
            for u, v in enumerate(values) if v is not None
        ]  # fmt: skip
        reviews.append(Review(trace_id="textbook", reviewer=coder, units=units, steps=steps))
    return reviews


def test_textbook_examples_through_reviews():
    report = agreement_report(textbook_reviews(KRIPPENDORFF_2011), weighting="units")
    assert round(report["labels"]["alpha"], 3) == 0.743
    fleiss = {f"rater{r}": [row[r] for row in FLEISS_1971] for r in range(6)}
    report = agreement_report(textbook_reviews(fleiss), weighting="units")
    assert round(report["labels"]["kappa"], 3) == 0.430
    kappas = [round(report["by_label"][CONTRIBUTIONS[c]]["kappa"], 3) for c in range(5)]
    assert kappas == FLEISS_CATEGORY_KAPPAS
    assert report["by_label"]["error"]["kappa"] is None  # no rater used a sixth category


def review(name: str, labels: list[str | None], units: list[Unit], trace_id: str = "t", split: set[int] = frozenset()) -> Review:
    steps: list[Step] = []
    for i, label in enumerate(labels):
        if label is None:
            continue
        if steps and steps[-1].last_unit == i - 1 and steps[-1].contribution == label and i not in split:
            steps[-1].last_unit = i
        else:
            steps.append(Step(index=len(steps), first_unit=i, last_unit=i, function="other", contribution=label))
    return Review(trace_id=trace_id, reviewer=name, units=units, steps=steps)


UNITS = [Unit(index=0, start=0, end=10, text="one two.  "), Unit(index=1, start=10, end=16, text="three,"), Unit(index=2, start=16, end=23, text=" 4 = 4!")]


def test_units_are_weighted_by_tokens_and_boundaries_coded_per_gap():
    a = review("a", ["indirect", "error", "error"], UNITS)
    b = review("b", ["indirect", "error", "error"], UNITS, split={2})
    c = review("c", ["indirect", None, "solved"], UNITS)
    (trace,) = project_traces([a, b, c])
    assert trace.weights == [3, 2, 4]  # one two . | three , | 4 = 4 !
    assert trace.boundaries == {"a": ["1", "0"], "b": ["1", "1"], "c": ["1", "1"]}
    assert project_traces([a], weighting="units")[0].weights == [1, 1, 1]
    report = agreement_report([a, b, c])
    pair = {tuple(p["reviewers"]): p for p in report["pairs"]}
    assert pair[("a", "b")]["observed"] == 1.0 and pair[("a", "b")]["boundary_observed"] == 0.5
    assert pair[("a", "c")]["units"] == 2 and pair[("a", "c")]["observed"] == pytest.approx(3 / 7)
    assert report["labels"]["kappa_units"] == 2  # unit 1 is not labelled by c


def test_failed_reviews_are_counted_not_fatal():
    a = review("a", ["indirect", "error", "error"], UNITS)
    failed = Review(trace_id="t", reviewer="b", units=UNITS, status="failed", error="rate limited")
    report = agreement_report([a, failed], truth="a")
    assert report["failed_reviews"] == {"a": 0, "b": 1}
    assert report["labels"]["alpha"] is None
    assert report["truth"]["reviewers"]["b"]["failed"] == 1 and report["truth"]["reviewers"]["b"]["traces"] == 0
    with pytest.raises(ValueError, match="no reviews by 'oracle'"):
        agreement_report([a], truth="oracle")


def test_reviewer_quality_table():
    units4 = [Unit(index=i, start=2 * i, end=2 * i + 2, text=f"w{i}") for i in range(4)]
    truth = [
        review("truth", ["indirect", "essential", "error", "error"], units4, "t1"),  # first error at 2
        review("truth", ["indirect", "essential", "irrelevant", "solved"], units4, "t2"),  # no error
        review("truth", ["error", "essential", "irrelevant", "solved"], units4, "t3"),  # first error at 0
    ]
    guess = [
        review("r", ["indirect", "error", "error", "error"], units4, "t1"),  # first error 1: miss
        review("r", ["indirect", "irrelevant", "irrelevant", "solved"], units4, "t2"),  # no error: hit
        review("r", ["error", "essential", "solved", "solved"], units4, "t3"),  # first error 0: hit
    ]
    quality = reviewer_quality(project_traces(truth + guess, weighting="units"), "truth")["reviewers"]["r"]
    # useful (solved/essential/indirect): truth positives t1:0,1 t2:0,1,3 t3:1,3 = 7;
    # r positives t1:0 t2:0,3 t3:1,2,3 = 6; both: t1:0 t2:0,3 t3:1,3 = 5
    assert quality["useful"] == pytest.approx({"precision": 5 / 6, "recall": 5 / 7, "f1": 10 / 13})
    # error: truth t1:2,3 t3:0 = 3; r t1:1,2,3 t3:0 = 4; both 3
    assert quality["error"] == pytest.approx({"precision": 3 / 4, "recall": 1.0, "f1": 6 / 7})
    first = quality["first_error"]
    assert (first["erroneous_traces"], first["erroneous_accuracy"], first["correct_traces"], first["correct_accuracy"]) == (2, 0.5, 1, 1.0)
    assert first["f1"] == pytest.approx(2 / 3)


def test_breakdowns_by_outcome_and_domain():
    golds = gold_traces(30, seed=3)
    reviews = review_all(golds, three_reviewers(golds, 0.3))
    report = agreement_report(reviews, traces=[g.trace for g in golds], problems=[g.problem for g in golds])
    assert set(report["by_outcome"]) == {"solved", "failed"}
    assert sum(f["traces"] for f in report["by_outcome"].values()) == 30
    assert report["by_domain"]["arithmetic"]["alpha"] == pytest.approx(report["labels"]["alpha"])
    shares = [f["share"] for f in report["by_label"].values()]
    assert sum(shares) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Done means: figures move the right way as the noise rises


def test_agreement_falls_as_noise_rises():
    golds = gold_traces(200, seed=0)
    assert 30 < sum(g.wrong for g in golds) < 100
    traces, problems = [g.trace for g in golds], [g.problem for g in golds]
    rows = []
    for flip_rate in (0.0, 0.1, 0.25, 0.5):
        report = agreement_report(review_all(golds, three_reviewers(golds, flip_rate)), traces=traces, problems=problems, truth="oracle")
        pairs = {tuple(p["reviewers"]): p for p in report["pairs"]}
        noisy = report["truth"]["reviewers"]["noisy"]
        rows.append(
            {
                "alpha": report["labels"]["alpha"],
                "kappa": report["labels"]["kappa"],
                "observed": report["labels"]["observed"],
                "noisy-oracle kappa": pairs[("noisy", "oracle")]["kappa"],
                "noisy-oracle observed": pairs[("noisy", "oracle")]["observed"],
                "gold-noisy kappa": pairs[("gold-roles", "noisy")]["kappa"],
                "useful F1": noisy["useful"]["f1"],
                "error F1": noisy["error"]["f1"],
                "first-error F1": noisy["first_error"]["f1"],
                "gold-oracle kappa": pairs[("gold-roles", "oracle")]["kappa"],
            }
        )
    for key in rows[0]:
        series = [row[key] for row in rows]
        if key == "gold-oracle kappa":  # the two noise-free reviewers are not affected
            assert len(set(series)) == 1 and series[0] > 0.95, series
        else:
            assert all(a > b for a, b in zip(series, series[1:])), (key, series)
    assert rows[0]["alpha"] > 0.99 and rows[-1]["alpha"] < 0.7
    assert not any(math.isnan(v) for row in rows for v in row.values())
