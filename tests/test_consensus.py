"""Tests for dca.consensus: rules as tables, segmentation projection, dependencies, failed
reviews, properties, and credit from a consensus (disputed units masked or uniform)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dca.consensus import build_consensus, build_consensuses, check_rule
from dca.credit import CreditConfig, compute_credit
from dca.records import CONTRIBUTIONS, FUNCTIONS, Review, Step, Unit
from dca.train.config import CreditSettings

TEXTS = ["Ava has 3 apples.", " She buys 4 more.", " 3 + 4 = 7.", " The sky is blue.", "\nAnswer: 7"]


def units_of(texts: list[str]) -> list[Unit]:
    units, start = [], 0
    for i, text in enumerate(texts):
        units.append(Unit(index=i, start=start, end=start + len(text), text=text))
        start += len(text)
    return units


UNITS = units_of(TEXTS)


def review_from_labels(name: str, labels: list[str | None], units: list[Unit] = UNITS, **kw) -> Review:
    """One step per run of equal labels; None leaves a unit uncovered."""
    steps: list[Step] = []
    for i, label in enumerate(labels):
        if label is None:
            continue
        if steps and steps[-1].last_unit == i - 1 and steps[-1].contribution == label:
            steps[-1].last_unit = i
        else:
            steps.append(Step(index=len(steps), first_unit=i, last_unit=i, function="other", contribution=label, reason=f"{name} says {label}"))
    return Review(trace_id="t", reviewer=name, units=units, steps=steps, **kw)


E, I, IR, S, ER = "essential", "indirect", "irrelevant", "solved", "error"


@pytest.mark.parametrize(
    "rule, votes, agreed",
    [
        # three reviewers, one column per unit
        ("unanimous", [[I, I, E, IR, S], [I, I, E, E, S], [I, IR, E, E, S]], [I, None, E, None, S]),
        ("majority", [[I, I, E, IR, S], [I, I, E, E, S], [I, IR, E, E, S]], [I, I, E, E, S]),
        ("majority", [[I, E, IR, S, S], [I, I, E, E, S], [E, IR, S, ER, None]], [I, None, None, None, S]),
        ("at-least-1", [[I, E, IR, S, S], [I, I, E, E, S], [E, IR, S, ER, None]], [I, None, None, None, S]),
        ("at-least-2", [[I, I, E, IR, S], [I, None, E, E, S], [I, IR, None, E, S]], [I, None, E, E, S]),
        ("at-least-3", [[I, I, E, IR, S], [I, None, E, E, S], [I, IR, None, E, S]], [I, None, None, None, S]),
        # two reviewers: majority means both
        ("majority", [[I, I, E, IR, S], [I, E, E, IR, ER]], [I, None, E, IR, None]),
    ],
)
def test_rules(rule, votes, agreed):
    reviews = [review_from_labels(f"r{n}", labels) for n, labels in enumerate(votes)]
    consensus = build_consensus(reviews, rule=rule)
    assert consensus.unit_contributions() == agreed
    assert consensus.disputed_units == [i for i, label in enumerate(agreed) if label is None]
    assert consensus.unit_votes[0] == {f"r{n}": labels[0] for n, labels in enumerate(votes) if labels[0] is not None}
    k = len(votes)
    for i in range(len(UNITS)):
        column = [labels[i] for labels in votes if labels[i] is not None]
        assert consensus.unit_agreement[i] == pytest.approx(max(column.count(c) for c in column) / k)
    chars = sum(len(u.text) for u, label in zip(UNITS, agreed) if label is not None)
    assert consensus.fraction_agreed == pytest.approx(chars / sum(len(t) for t in TEXTS))


def test_failed_reviews_are_excluded_and_counted():
    ok = [review_from_labels("a", [I, I, E, IR, S]), review_from_labels("b", [I, E, E, IR, S])]
    failed = Review(trace_id="t", reviewer="c", units=UNITS, status="failed", error="timeout")
    consensus = build_consensus([*ok, failed], rule="unanimous")
    assert consensus.failed_reviews == 1
    assert consensus.reviewers == ["a", "b"]
    assert consensus.unit_contributions() == [I, None, E, IR, S]
    everyone_failed = build_consensus([failed], rule="majority")
    assert everyone_failed.steps == [] and everyone_failed.failed_reviews == 1
    assert everyone_failed.units == UNITS and everyone_failed.fraction_agreed == 0.0


def test_a_unit_nobody_covers_is_neither_agreed_nor_disputed():
    consensus = build_consensus([review_from_labels("a", [I, None, E, IR, S]), review_from_labels("b", [I, None, E, E, S])])
    assert consensus.unit_contributions()[1] is None
    assert consensus.disputed_units == [3]
    assert consensus.unit_agreement[1] == 0.0


def test_different_segmentations_are_projected_onto_common_units():
    coarse = units_of([TEXTS[0] + TEXTS[1], TEXTS[2], TEXTS[3] + TEXTS[4]])
    a = review_from_labels("a", [I, E, IR], units=coarse)  # "irrelevant" over the sky and the answer
    b = review_from_labels("b", [I, I, E, IR, S])
    consensus = build_consensus([a, b], rule="unanimous")
    assert [u.text for u in consensus.units] == TEXTS
    assert consensus.unit_contributions() == [I, I, E, IR, None]
    assert consensus.disputed_units == [4]
    # a's one step over units 0-1 keeps the agreed run in one step even though b also has one
    assert [(s.first_unit, s.last_unit, s.contribution) for s in consensus.steps] == [(0, 1, I), (2, 2, E), (3, 3, IR)]


def test_reviews_of_different_texts_or_traces_are_rejected():
    other = units_of(["Something else entirely."])
    with pytest.raises(ValueError, match="different texts"):
        build_consensus([review_from_labels("a", [I]), review_from_labels("b", [I], units=other)])
    with pytest.raises(ValueError, match="different traces"):
        build_consensus([review_from_labels("a", [I] * 5), Review(trace_id="u", reviewer="b", units=UNITS)])
    with pytest.raises(ValueError, match="more than once"):
        build_consensus([review_from_labels("a", [I] * 5), review_from_labels("a", [E] * 5)])
    with pytest.raises(ValueError, match="unknown consensus rule"):
        check_rule("most")
    with pytest.raises(ValueError, match="unknown consensus rule"):
        check_rule("at-least-0")


def test_steps_keep_only_the_dependencies_the_agreeing_reviewers_share():
    def review(name, depends_of_sum):
        steps = [
            Step(index=0, first_unit=0, last_unit=0, function="given_fact", contribution=I),
            Step(index=1, first_unit=1, last_unit=1, function="given_fact", contribution=I),
            Step(index=2, first_unit=2, last_unit=2, function="computation", contribution=E, depends_on=depends_of_sum),
            Step(index=3, first_unit=3, last_unit=4, function="conclusion", contribution=S, depends_on=[2]),
        ]
        return Review(trace_id="t", reviewer=name, units=UNITS, steps=steps)

    consensus = build_consensus([review("a", [0, 1]), review("b", [1]), review("c", [0, 1])], rule="unanimous")
    assert [s.depends_on for s in consensus.steps] == [[], [], [1], [2]]
    assert [s.function for s in consensus.steps] == ["given_fact", "given_fact", "computation", "conclusion"]
    majority = build_consensus([review("a", [0, 1]), review("b", [1]), review("c", [0, 1])], rule="majority")
    assert majority.steps[2].depends_on == [1]  # all three agree on the label, so b counts too


def test_build_consensuses_groups_by_trace_in_order():
    a = review_from_labels("a", [I] * 5)
    b = Review(trace_id="s", reviewer="a", units=UNITS, steps=[Step(index=0, first_unit=0, last_unit=4, function="other", contribution=E)])
    consensuses = build_consensuses([b, a, review_from_labels("b", [I] * 5)])
    assert [c.trace_id for c in consensuses] == ["s", "t"]
    assert [c.reviewers for c in consensuses] == [["a"], ["a", "b"]]


# ---------------------------------------------------------------------------------------------
# Properties


@st.composite
def reviews_of_one_text(draw, count: int):
    """`count` reviews of one text: each on a coarsening of shared base units, steps over
    random runs (some units uncovered), random labels, dependencies on earlier steps."""
    n = draw(st.integers(1, 8))
    base = units_of([f"u{i}. " for i in range(n)])
    reviews = []
    for r in range(count):
        cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=n)) if n > 1 else []))
        edges = [0, *cuts, n]
        units = units_of(["".join(u.text for u in base[a:b]) for a, b in zip(edges, edges[1:])])
        steps: list[Step] = []
        i = 0
        while i < len(units):
            length = draw(st.integers(1, len(units) - i))
            if draw(st.booleans()) or draw(st.booleans()):  # covered 3 times in 4
                steps.append(
                    Step(
                        index=len(steps), first_unit=i, last_unit=i + length - 1,
                        function=draw(st.sampled_from(FUNCTIONS)), contribution=draw(st.sampled_from(CONTRIBUTIONS)),
                        depends_on=sorted(draw(st.sets(st.integers(0, len(steps) - 1)))) if steps else [],
                        reason=draw(st.sampled_from(["", "because", "why not"])),
                    )
                )  # fmt: skip
            i += length
        reviews.append(Review(trace_id="t", reviewer=f"reviewer-{r}", units=units, steps=steps))
    return reviews


_settings = settings(max_examples=150, deadline=None)


@_settings
@given(reviews=reviews_of_one_text(1), rule=st.sampled_from(["unanimous", "majority", "at-least-1"]))
def test_consensus_of_one_review_is_that_review(reviews, rule):
    (review,) = reviews
    consensus = build_consensus(reviews, rule=rule)
    assert consensus.units == review.units
    assert consensus.steps == review.steps
    assert consensus.unit_contributions() == review.unit_contributions()
    assert consensus.disputed_units == []


@_settings
@given(reviews=reviews_of_one_text(1), copies=st.integers(2, 4))
def test_identical_reviews_agree_fully_under_unanimity(reviews, copies):
    (review,) = reviews
    same = [Review(trace_id="t", reviewer=f"r{n}", units=review.units, steps=review.steps) for n in range(copies)]
    consensus = build_consensus(same, rule="unanimous")
    covered = [label is not None for label in review.unit_contributions()]
    assert consensus.disputed_units == []
    assert consensus.steps == review.steps
    assert consensus.unit_agreement == [1.0 if c else 0.0 for c in covered]
    chars = sum(len(u.text) for u, c in zip(review.units, covered) if c)
    assert consensus.fraction_agreed == pytest.approx(chars / sum(len(u.text) for u in review.units))
    if all(covered):
        assert consensus.fraction_agreed == 1.0


@_settings
@given(reviews=reviews_of_one_text(3), order=st.permutations(range(3)), rule=st.sampled_from(["unanimous", "majority", "at-least-1", "at-least-2"]))
def test_reviewer_order_does_not_matter(reviews, order, rule):
    forward = build_consensus(reviews, rule=rule)
    permuted = build_consensus([reviews[i] for i in order], rule=rule)
    assert permuted == forward
    assert list(permuted.unit_votes[0]) == sorted(permuted.unit_votes[0])


# ---------------------------------------------------------------------------------------------
# Credit from a consensus


def consensus_for_credit():
    # units: fact (agreed indirect), buy (disputed), sum (agreed essential), sky (agreed irrelevant), answer
    return build_consensus(
        [review_from_labels("a", [I, I, E, IR, S]), review_from_labels("b", [I, IR, E, IR, S])], rule="unanimous"
    )


def char_tokens(text: str) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(len(text))]


@pytest.mark.parametrize("policy", ["mask", "conserve", "random"])
def test_disputed_units_are_masked_by_default_or_kept_uniform(policy):
    consensus = consensus_for_credit()
    assert consensus.disputed_units == [1]
    text = "".join(TEXTS)
    spans = char_tokens(text)
    answer = (text.index("7", text.index("Answer")), len(text))
    disputed = range(UNITS[1].start, UNITS[1].end)

    def credit(disputed_mode):
        return compute_credit(
            trace_id="t", text=text, token_spans=spans, review=consensus, sequence_advantage=2.0,
            answer_span=answer, config=CreditConfig(policy=policy, disputed=disputed_mode),
        )  # fmt: skip

    masked, kept = credit("mask"), credit("uniform")
    assert CreditConfig().disputed == "mask"
    assert all(masked.token_advantages[i] == 0.0 for i in disputed)
    assert all(kept.token_advantages[i] == 2.0 for i in disputed)
    if policy in ("conserve", "random"):
        for c in (masked, kept):
            assert sum(c.token_advantages) == pytest.approx(2.0 * len(spans))
    if policy == "mask":  # agreed units are untouched by the choice
        assert [a for i, a in enumerate(kept.token_advantages) if i not in disputed] == [
            a for i, a in enumerate(masked.token_advantages) if i not in disputed
        ]
    if policy == "random":  # random never draws a kept disputed unit a second time
        assert set(kept.token_advantages[i] for i in disputed) == {2.0}


def test_disputed_option_is_validated_and_reaches_the_training_config():
    with pytest.raises(ValueError, match="disputed"):
        CreditConfig(disputed="ignore")
    assert CreditSettings().to_credit_config().disputed == "mask"
    assert CreditSettings(disputed="uniform").to_credit_config().disputed == "uniform"


@pytest.mark.parametrize("policy", ["mask", "conserve", "random"])
def test_a_trace_whose_reviewers_agree_on_no_useful_unit_is_not_trained(policy):
    # Every useful label is contested: "train only where reviewers agree" leaves nothing.
    consensus = build_consensus(
        [review_from_labels("a", [I, I, E, IR, S]), review_from_labels("b", [IR, IR, IR, IR, IR])], rule="unanimous"
    )
    assert consensus.disputed_units
    text = "".join(TEXTS)
    credit = compute_credit(
        trace_id="t", text=text, token_spans=char_tokens(text), review=consensus, sequence_advantage=2.0,
        answer_span=None, config=CreditConfig(policy=policy),
    )  # fmt: skip
    assert credit.token_advantages == [0.0] * len(text)
    assert credit.fallback.startswith("not trained")
    # With disputed units kept uniform, the contested units train as plain GRPO instead.
    kept = compute_credit(
        trace_id="t", text=text, token_spans=char_tokens(text), review=consensus, sequence_advantage=2.0,
        answer_span=None, config=CreditConfig(policy=policy, disputed="uniform"),
    )  # fmt: skip
    assert kept.token_advantages == [2.0] * len(text)
