"""Tests for dca.credit: token/character alignment and the credit policies."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dca.credit import CreditConfig, compute_credit, credit_statistics, token_char_spans
from dca.records import CONTRIBUTIONS, Consensus, Credit, Review, Step, Unit
from dca.segment import segment

# Session-scoped fixtures are safe to share across hypothesis examples.
_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


# ---------------------------------------------------------------------------------------------
# Alignment


def test_characters_split_across_tokens_belong_to_every_token_that_spells_them(
    smollm_tokenizer,
) -> None:
    text = "héllo 😀 世界"
    ids = encode(smollm_tokenizer, text)
    # SmolLM2 spells it h | Ã© | llo | ĠðŁĺ | Ģ | Ġ | ä¸ | ĸ | ç | ķ | Į: the emoji and each
    # CJK character are split over two or three tokens.
    assert smollm_tokenizer.convert_ids_to_tokens(ids) == [
        "h", "Ã©", "llo", "ĠðŁĺ", "Ģ", "Ġ", "ä¸", "ĸ", "ç", "ķ", "Į",
    ]  # fmt: skip
    spans = token_char_spans(smollm_tokenizer, ids, text)
    assert [text[s:e] for s, e in spans] == [
        "h", "é", "llo", " 😀", "😀", " ", "世", "世", "界", "界", "界",
    ]  # fmt: skip
    assert spans[4] == (6, 7)  # the emoji's continuation token spans the emoji


def test_tokens_of_a_split_character_share_its_unit(smollm_tokenizer) -> None:
    # Issue 10: the ducks' continuation tokens used to get empty spans, went with the answer
    # span and were always credited.
    text = "Noise 🦆🦆 here.\nAnswer: 5"
    ids = encode(smollm_tokenizer, text)
    spans = token_char_spans(smollm_tokenizer, ids, text)
    assert all(s < e for s, e in spans)
    units = segment(text)
    assert len(units) == 2
    review = Review(trace_id="t", reviewer="r", units=units, steps=[
        Step(index=0, first_unit=0, last_unit=0, function="other", contribution="irrelevant"),
        Step(index=1, first_unit=1, last_unit=1, function="conclusion", contribution="solved"),
    ])  # fmt: skip
    credit = compute_credit(
        trace_id="t", text=text, token_spans=spans, review=review, sequence_advantage=1.0,
        answer_span=(len(text) - 1, len(text)), config=CreditConfig(policy="mask"),
    )  # fmt: skip
    credited = "".join(text[s:e] for (s, e), a in zip(spans, credit.token_advantages) if a)
    assert credited == "\nAnswer: 5"
    assert all(a == 0 for (s, _), a in zip(spans, credit.token_advantages) if s < units[1].start)


@_settings
@given(text=st.text(max_size=60))
def test_alignment_is_exact_on_arbitrary_unicode(smollm_tokenizer, text: str) -> None:
    ids = encode(smollm_tokenizer, text)
    assume(smollm_tokenizer.decode(ids) == text)  # byte-level BPE round-trips any text
    spans = token_char_spans(smollm_tokenizer, ids, text)
    assert len(spans) == len(ids)
    # In order, covering the text; consecutive spans overlap by at most one character.
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s0 <= s1 and e0 <= e1 and e0 - 1 <= s1 <= e0
    if ids:
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
    # Independent oracle: a prefix of tokens decodes to the characters whose first byte it
    # holds (a character cut at the end decodes to one U+FFFD).
    for i, (_, end) in enumerate(spans):
        assert end == len(smollm_tokenizer.decode(ids[: i + 1]))
    for (start, end), token_id in zip(spans, ids):
        alone = smollm_tokenizer.decode([token_id])
        if "\ufffd" not in alone:  # U+FFFD: part of a character split across tokens
            # A token that holds whole characters spans exactly its own text.
            assert text[start:end] == alone
        else:
            # A token holding part of a character spans it: no token has an empty span.
            assert start < end


def test_special_tokens_get_zero_width_spans_at_the_end(smollm_tokenizer) -> None:
    text = "So 3 + 4 = 7."
    ids = encode(smollm_tokenizer, text)
    eos = smollm_tokenizer.convert_tokens_to_ids("<|im_end|>")
    spans = token_char_spans(smollm_tokenizer, [*ids, eos, eos], text)
    assert spans[: len(ids)] == token_char_spans(smollm_tokenizer, ids, text)
    assert spans[len(ids) :] == [(len(text), len(text))] * 2


def test_tokens_missing_from_the_text_get_zero_width_spans(smollm_tokenizer) -> None:
    # A completion cut by the length limit inside an emoji: the decoded text ends in U+FFFD,
    # which is not the emoji's first bytes.
    ids = encode(smollm_tokenizer, "Done 😀")
    text = smollm_tokenizer.decode(ids[:-1])
    assert text.endswith("\ufffd")
    spans = token_char_spans(smollm_tokenizer, ids, text)
    assert [text[s:e] for s, e in spans[:-2]] == ["Done"]
    assert spans[-2:] == [(len(text), len(text))] * 2
    # Text that stops early: the tokens after it are not found.
    ids = encode(smollm_tokenizer, "one two three")
    spans = token_char_spans(smollm_tokenizer, ids, "one two")
    assert spans == [(0, 3), (3, 7), (7, 7)]


@pytest.fixture(scope="module")
def metaspace_tokenizer():
    """A SentencePiece-style (Metaspace, not byte-level) BPE tokenizer trained in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    corpus = ["the cat sat on the mat", "three apples and four pears = 7"]
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "</s>"])
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")


def test_other_tokenizers_are_aligned_by_prefix_decoding(metaspace_tokenizer) -> None:
    text = "the cat ate 7 pears"
    ids = encode(metaspace_tokenizer, text)
    spans = token_char_spans(metaspace_tokenizer, [*ids, metaspace_tokenizer.eos_token_id], text)
    pieces = [text[s:e] for s, e in spans]
    assert "".join(pieces) == text
    assert pieces[0] == "the" and pieces[-2] == " pears"
    assert spans[-1] == (len(text), len(text))
    # Decoded text that differs from the text (truncated): later tokens get zero width.
    spans = token_char_spans(metaspace_tokenizer, ids, "the cat")
    assert spans[:2] == [(0, 3), (3, 7)]
    assert all(s == e == 7 for s, e in spans[2:])


# ---------------------------------------------------------------------------------------------
# Credit


def review_of(text: str, labels: list[str], *, status: str = "ok") -> Review:
    """A review of `text`'s units with one single-unit step per label."""
    units = segment(text)
    if status == "failed":
        return Review(trace_id="t", reviewer="r", units=units, status="failed", error="timeout")
    assert len(units) == len(labels)
    steps = [
        Step(index=i, first_unit=i, last_unit=i, function="other", contribution=label)
        for i, label in enumerate(labels)
    ]
    return Review(trace_id="t", reviewer="r", units=units, steps=steps)


EXAMPLE = "She has 3 apples. The sky is blue. So 3 + 4 = 7.\nAnswer: 7"
EXAMPLE_LABELS = ["essential", "irrelevant", "solved", "solved"]
EXAMPLE_ANSWER = (EXAMPLE.rindex("7"), len(EXAMPLE))


def credit_example(tokenizer, policy: str, advantage: float = 2.0, **overrides) -> Credit:
    arguments = dict(
        trace_id="t",
        text=EXAMPLE,
        token_spans=token_char_spans(tokenizer, encode(tokenizer, EXAMPLE), EXAMPLE),
        review=review_of(EXAMPLE, EXAMPLE_LABELS),
        sequence_advantage=advantage,
        answer_span=EXAMPLE_ANSWER,
        config=CreditConfig(policy=policy),
    )
    return compute_credit(**(arguments | overrides))


def test_policies_on_an_example(smollm_tokenizer) -> None:
    spans = token_char_spans(smollm_tokenizer, encode(smollm_tokenizer, EXAMPLE), EXAMPLE)
    n = len(spans)
    irrelevant = [EXAMPLE[s:e] for s, e in spans if 17 <= s < 34]
    assert "".join(irrelevant) == " The sky is blue."

    uniform = credit_example(smollm_tokenizer, "uniform")
    assert uniform.token_advantages == [2.0] * n and uniform.credited_tokens == n

    mask = credit_example(smollm_tokenizer, "mask")
    expected = [0.0 if 17 <= s < 34 else 2.0 for s, _ in spans]
    assert mask.token_advantages == expected
    assert mask.credited_tokens == n - len(irrelevant)
    assert mask.fallback is None

    conserve = credit_example(smollm_tokenizer, "conserve")
    scale = n / (n - len(irrelevant))
    assert conserve.token_advantages == pytest.approx([a * scale for a in expected])
    assert sum(conserve.token_advantages) == pytest.approx(n * 2.0)


def test_zero_width_tokens_go_with_the_answer(smollm_tokenizer) -> None:
    ids = encode(smollm_tokenizer, EXAMPLE) + [smollm_tokenizer.eos_token_id]
    spans = token_char_spans(smollm_tokenizer, ids, EXAMPLE)
    first_useful = review_of(EXAMPLE, ["essential"] + ["irrelevant"] * 3)
    credit = credit_example(
        smollm_tokenizer, "mask", token_spans=spans, review=first_useful
    )
    # Of the last unit, only the answer "7" and the EOS after it are credited.
    assert credit.fallback is None
    assert credit.token_advantages[-3:] == [0.0, 2.0, 2.0]
    # Without an answer span, EOS goes with the last unit.
    last_useful = review_of(EXAMPLE, ["irrelevant"] * 3 + ["solved"])
    credit = credit_example(
        smollm_tokenizer, "mask", token_spans=spans, review=last_useful, answer_span=None
    )
    assert credit.token_advantages[-1] == 2.0


def test_a_token_belongs_to_the_unit_of_its_first_non_whitespace_character() -> None:
    text = "A = 1. B = 2."
    # Units from a segmenter that attaches whitespace to the end of the unit before.
    units = [
        Unit(index=0, start=0, end=7, text="A = 1. "),
        Unit(index=1, start=7, end=13, text="B = 2."),
    ]
    steps = [Step(index=1, first_unit=1, last_unit=1, function="other", contribution="solved")]
    review = Review(trace_id="t", reviewer="r", units=units, steps=steps)
    token_spans = [(0, 1), (1, 6), (6, 8), (8, 13), (13, 13)]  # "A", " = 1.", " B", " = 2.", EOS
    credit = compute_credit(
        trace_id="t", text=text, token_spans=token_spans, review=review, sequence_advantage=1.0,
        answer_span=None, config=CreditConfig(policy="mask"),
    )  # fmt: skip
    # " B" starts in unit 0 but its first non-whitespace character is in unit 1; EOS goes with
    # the last unit when there is no answer span.
    assert credit.token_advantages == [0.0, 0.0, 1.0, 1.0, 1.0]
    # An all-whitespace token belongs to the unit of its first character.
    credit = compute_credit(
        trace_id="t", text=text, token_spans=[(0, 6), (6, 7), (7, 13)], review=review,
        sequence_advantage=1.0, answer_span=None, config=CreditConfig(policy="mask"),
    )  # fmt: skip
    assert credit.token_advantages == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "review, reason",
    [
        (None, "no review"),
        (review_of(EXAMPLE, EXAMPLE_LABELS, status="failed"), "review failed: timeout"),
        (review_of(EXAMPLE, ["irrelevant", "error", "failed_attempt", "irrelevant"]), "nothing"),
    ],
)
@pytest.mark.parametrize("answer_span", [None, EXAMPLE_ANSWER])
@pytest.mark.parametrize("policy", ["mask", "conserve", "random"])
def test_fallback_to_uniform(smollm_tokenizer, review, reason: str, policy: str, answer_span) -> None:
    # A review that credits no unit falls back even when an answer span exists: conserve
    # would otherwise pile the whole N * A onto the few answer tokens.
    credit = credit_example(smollm_tokenizer, policy, review=review, answer_span=answer_span)
    assert credit.fallback is not None and credit.fallback.startswith(reason)
    assert credit.policy == policy
    assert credit.token_advantages == [2.0] * len(credit.token_advantages)


def test_consensus_credits_only_agreed_units(smollm_tokenizer) -> None:
    units = segment(EXAMPLE)
    consensus = Consensus(
        trace_id="t",
        reviewers=["a", "b"],
        rule="unanimous",
        units=units,
        steps=[Step(index=0, first_unit=2, last_unit=3, function="other", contribution="solved")],
        disputed_units=[0, 1],
    )  # fmt: skip
    credit = credit_example(smollm_tokenizer, "mask", review=consensus)
    spans = token_char_spans(smollm_tokenizer, encode(smollm_tokenizer, EXAMPLE), EXAMPLE)
    assert credit.token_advantages == [0.0 if s < units[2].start else 2.0 for s, _ in spans]


def test_random_policy_is_seeded_by_seed_and_trace_id(smollm_tokenizer) -> None:
    def chosen(trace_id: str, seed: int) -> list[bool]:
        config = CreditConfig(policy="random", seed=seed)
        credit = credit_example(smollm_tokenizer, "random", trace_id=trace_id, config=config)
        return [a != 0 for a in credit.token_advantages]

    assert chosen("t", 0) == chosen("t", 0)
    assert len({tuple(chosen(f"trace-{i}", 0)) for i in range(20)}) > 1
    assert len({tuple(chosen("t", seed)) for seed in range(20)}) > 1


def test_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="uniform, mask, conserve, random"):
        CreditConfig(policy="bogus")
    with pytest.raises(ValueError, match="'useful'.*choose from solved, essential"):
        CreditConfig(useful_contributions=("solved", "useful"))


def test_spans_that_do_not_fit_the_text_are_a_caller_error(smollm_tokenizer) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        credit_example(smollm_tokenizer, "mask", answer_span=(0, len(EXAMPLE) + 5))


def test_empty_completion() -> None:
    credit = compute_credit(
        trace_id="t", text="", token_spans=[], review=None, sequence_advantage=1.0,
        answer_span=None, config=CreditConfig(),
    )  # fmt: skip
    assert credit.token_advantages == [] and credit.fallback is None


def test_credit_statistics() -> None:
    credits = [
        Credit(trace_id="a", policy="mask", sequence_advantage=1.0,
               token_advantages=[1.0, 0.0, 1.0, 0.0], credited_tokens=2),
        Credit(trace_id="b", policy="mask", sequence_advantage=-2.0,
               token_advantages=[-2.0] * 4, credited_tokens=4, fallback="no review"),
    ]  # fmt: skip
    assert credit_statistics(credits) == {
        "traces": 2.0,
        "tokens": 8.0,
        "fraction_credited": 0.75,
        "fallbacks": 1.0,
        "mean_abs_advantage": 1.25,
    }
    assert credit_statistics([])["fraction_credited"] == 0.0


# Property tests over generated completions, real SmolLM2 token spans and random labels.

_sentences = st.sampled_from(
    [
        "She has 3 apples.", "Then 3 + 4 = 7 apples, and 7 * 2 = 14 pears.",
        "The sky is blue.", "Wait... let me verify.", "It costs $1.50 each.", "😀 Great!",
        "数量是5。", "Café, e.g. latte.", "1. First item", "- a dash item", "So x = 12 / 4 = 3.",
    ]
)  # fmt: skip
_separators = st.sampled_from([" ", "\n", "\n\n", "  ", ""])


@st.composite
def credit_cases(draw):
    parts = draw(st.lists(st.tuples(_sentences, _separators), min_size=1, max_size=6))
    body = "".join(sentence + separator for sentence, separator in parts)
    answer = draw(st.sampled_from(["", "\nAnswer: 14", "The answer is 7"]))
    text = body + answer
    answer_span = (len(text) - 2, len(text)) if answer else None
    units = segment(text)
    n_units = len(units)
    labels = draw(st.lists(st.sampled_from(CONTRIBUTIONS), min_size=n_units, max_size=n_units))
    advantage = draw(st.one_of(st.just(0.0), st.floats(0.01, 3), st.floats(-3, -0.01)))
    with_eos = draw(st.booleans())
    return text, answer_span, labels, advantage, with_eos


def run_case(tokenizer, case, policy: str) -> tuple[Credit, list[tuple[int, int]], Review]:
    text, answer_span, labels, advantage, with_eos = case
    ids = encode(tokenizer, text) + ([tokenizer.eos_token_id] if with_eos else [])
    spans = token_char_spans(tokenizer, ids, text)
    review = review_of(text, labels)
    credit = compute_credit(
        trace_id="case", text=text, token_spans=spans, review=review,
        sequence_advantage=advantage, answer_span=answer_span, config=CreditConfig(policy=policy),
    )  # fmt: skip
    assert len(credit.token_advantages) == len(ids)
    return credit, spans, review


def overlaps(span: tuple[int, int], other: tuple[int, int] | None) -> bool:
    return other is not None and span[0] < other[1] and span[1] > other[0]


@_settings
@given(case=credit_cases())
def test_uniform_is_the_sequence_advantage_everywhere(smollm_tokenizer, case) -> None:
    credit, _, _ = run_case(smollm_tokenizer, case, "uniform")
    assert credit.token_advantages == [case[3]] * len(credit.token_advantages)
    assert credit.fallback is None


@_settings
@given(case=credit_cases())
def test_mask_is_the_advantage_inside_useful_units_and_zero_outside(smollm_tokenizer, case) -> None:
    text, answer_span, labels, advantage, _ = case
    credit, spans, review = run_case(smollm_tokenizer, case, "mask")
    assume(credit.fallback is None)
    assert set(credit.token_advantages) <= {0.0, advantage}
    for span, value in zip(spans, credit.token_advantages):
        if span[0] == span[1]:
            continue
        if overlaps(span, answer_span):
            assert value == advantage  # the answer span always carries credit
            continue
        for unit, label in zip(review.units, labels):
            if unit.start <= span[0] and span[1] <= unit.end:  # wholly inside one unit
                assert value == (advantage if label in CreditConfig().useful_contributions else 0.0)


@_settings
@given(case=credit_cases(), policy=st.sampled_from(["conserve", "random"]))
def test_conserving_policies_keep_the_uniform_total(smollm_tokenizer, case, policy: str) -> None:
    credit, spans, _ = run_case(smollm_tokenizer, case, policy)
    assert math.isclose(
        sum(credit.token_advantages), credit.uniform_sum, rel_tol=1e-9, abs_tol=1e-9
    )
    # The answer span always carries credit, with the sign of the advantage.
    answer_span = case[1]
    for span, value in zip(spans, credit.token_advantages):
        if overlaps(span, answer_span) and case[3] != 0:
            assert value * case[3] > 0


@_settings
@given(case=credit_cases())
def test_random_credits_about_as_many_tokens_as_mask_on_whole_units(smollm_tokenizer, case) -> None:
    mask, spans, review = run_case(smollm_tokenizer, case, "mask")
    random_credit, _, _ = run_case(smollm_tokenizer, case, "random")
    assume(mask.fallback is None)
    assert random_credit.fallback is None
    # Tokens wholly inside one unit (and outside the answer) are credited all or none.
    largest_unit = 0
    for unit in review.units:
        inside = [
            value != 0
            for span, value in zip(spans, random_credit.token_advantages)
            if unit.start <= span[0] < span[1] <= unit.end and not overlaps(span, case[1])
        ]
        largest_unit = max(largest_unit, len(inside))
        if case[3] != 0:
            assert all(inside) or not any(inside)
    if case[3] != 0:
        # Units straddled by a token add one token each to the count below.
        assert abs(random_credit.credited_tokens - mask.credited_tokens) <= largest_unit + len(
            review.units
        )


@_settings
@given(case=credit_cases(), policy=st.sampled_from(["mask", "conserve", "random"]))
def test_failed_review_falls_back_to_uniform(smollm_tokenizer, case, policy: str) -> None:
    text, answer_span, _, advantage, _ = case
    ids = encode(smollm_tokenizer, text)
    credit = compute_credit(
        trace_id="case", text=text, token_spans=token_char_spans(smollm_tokenizer, ids, text),
        review=review_of(text, [], status="failed"), sequence_advantage=advantage,
        answer_span=answer_span, config=CreditConfig(policy=policy),
    )  # fmt: skip
    assert credit.fallback == "review failed: timeout"
    assert credit.token_advantages == [advantage] * len(ids)


# ---------------------------------------------------------------------------------------------
# The signed policies (issue 10): a negative advantage goes to the blamed steps.

FAILED = "She has 3 apples. So 3 + 4 = 8. Then 8 * 2 = 16.\nAnswer: 16"
FAILED_LABELS = ["essential", "error", "essential", "solved"]
FAILED_ANSWER = (len(FAILED) - 2, len(FAILED))


def credit_failed(tokenizer, config: CreditConfig, advantage: float = -2.0, review=None) -> tuple[Credit, list]:
    spans = token_char_spans(tokenizer, encode(tokenizer, FAILED), FAILED)
    credit = compute_credit(
        trace_id="t", text=FAILED, token_spans=spans, review=review or review_of(FAILED, FAILED_LABELS),
        sequence_advantage=advantage, answer_span=FAILED_ANSWER, config=config,
    )  # fmt: skip
    return credit, spans


def test_signed_puts_a_negative_advantage_on_the_error_step(smollm_tokenizer) -> None:
    credit, spans = credit_failed(smollm_tokenizer, CreditConfig(policy="signed", max_weight=None))
    units = segment(FAILED)
    error = units[1]
    def first_char(s: int, e: int) -> int:  # a token's first non-whitespace character
        return next((i for i in range(s, e) if not FAILED[i].isspace()), s)

    blamed = [error.start <= first_char(s, e) < error.end or overlaps((s, e), FAILED_ANSWER) for s, e in spans]
    n = len(spans)
    assert credit.fallback is None
    assert credit.token_advantages == pytest.approx([-2.0 * n / sum(blamed) if b else 0.0 for b in blamed])
    assert sum(credit.token_advantages) == pytest.approx(-2.0 * n)
    assert credit.credited_tokens == sum(blamed)
    # The unit sums show where it went: all of it on the error step and the wrong answer.
    assert credit.unit_advantages[0] == 0.0 and credit.unit_advantages[2] == 0.0
    assert credit.unit_advantages[1] < 0 and credit.unit_advantages[3] < 0
    assert sum(credit.unit_advantages) == pytest.approx(-2.0 * n)
    # Under conserve the same failed trace blames the correct steps and spares the error.
    conserve, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="conserve"))
    assert conserve.unit_advantages[1] == 0.0 and conserve.unit_advantages[0] < 0


def test_signed_positive_side_is_conserve(smollm_tokenizer) -> None:
    for labels in (EXAMPLE_LABELS, ["irrelevant", "error", "failed_attempt", "irrelevant"]):
        review = review_of(EXAMPLE, labels)
        signed = credit_example(smollm_tokenizer, "signed", review=review, config=CreditConfig(policy="signed"))
        conserve = credit_example(smollm_tokenizer, "conserve", review=review)
        assert signed.token_advantages == conserve.token_advantages
        assert signed.fallback == conserve.fallback


def test_signed_negative_side_options(smollm_tokenizer) -> None:
    zero, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="signed", negative="zero"))
    assert set(zero.token_advantages) == {0.0} and zero.credited_tokens == 0 and zero.fallback is None
    # Failed completions train nothing even without a review.
    zero_unreviewed = compute_credit(
        trace_id="t", text=FAILED, token_spans=[(0, 3)], review=None, sequence_advantage=-1.0,
        answer_span=None, config=CreditConfig(policy="signed", negative="zero"),
    )  # fmt: skip
    assert zero_unreviewed.token_advantages == [0.0]
    uniform, spans = credit_failed(smollm_tokenizer, CreditConfig(policy="signed", negative="uniform"))
    assert uniform.token_advantages == [-2.0] * len(spans) and uniform.fallback is None
    # The positive side is untouched by the negative option.
    positive, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="signed", negative="zero"), advantage=1.0)
    conserve, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="conserve"), advantage=1.0)
    assert positive.token_advantages == conserve.token_advantages


def test_signed_with_nothing_to_blame_falls_back_to_uniform(smollm_tokenizer) -> None:
    review = review_of(FAILED, ["essential", "essential", "essential", "solved"])
    credit, spans = credit_failed(smollm_tokenizer, CreditConfig(policy="signed"), review=review)
    assert credit.fallback == "nothing blamed: the review labels no unit error or failed_attempt"
    assert credit.token_advantages == [-2.0] * len(spans)
    # Blaming more labels is configurable.
    config = CreditConfig(policy="signed", blame_contributions=("error", "irrelevant"), max_weight=None)
    review = review_of(FAILED, ["irrelevant", "essential", "essential", "solved"])
    credit, _ = credit_failed(smollm_tokenizer, config, review=review)
    assert credit.fallback is None and credit.unit_advantages[0] < 0 and credit.unit_advantages[1] == 0


def test_signed_can_blame_the_steps_built_on_an_error(smollm_tokenizer) -> None:
    units = segment(FAILED)
    steps = [
        Step(index=0, first_unit=0, last_unit=0, function="given_fact", contribution="essential"),
        Step(index=1, first_unit=1, last_unit=1, function="computation", contribution="error", depends_on=[0]),
        Step(index=2, first_unit=2, last_unit=2, function="computation", contribution="essential", depends_on=[1]),
        Step(index=3, first_unit=3, last_unit=3, function="conclusion", contribution="solved", depends_on=[2]),
    ]  # fmt: skip
    review = Review(trace_id="t", reviewer="r", units=units, steps=steps)
    plain, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="signed", max_weight=None), review=review)
    assert plain.unit_advantages[2] == 0.0
    both, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="signed", blame_dependents=True, max_weight=None), review=review)
    assert both.unit_advantages[0] == 0.0
    assert all(both.unit_advantages[i] < 0 for i in (1, 2, 3))


def test_signed_consensus_with_no_agreed_blame_trains_nothing(smollm_tokenizer) -> None:
    units = segment(FAILED)
    consensus = Consensus(
        trace_id="t", reviewers=["a", "b"], rule="unanimous", units=units,
        steps=[Step(index=0, first_unit=2, last_unit=3, function="other", contribution="solved")],
        disputed_units=[0, 1],
    )  # fmt: skip
    credit, _ = credit_failed(smollm_tokenizer, CreditConfig(policy="signed"), review=consensus)
    assert set(credit.token_advantages) == {0.0}
    assert credit.fallback == "not trained: reviewers agree on no blamed unit"


def test_signed_config_is_validated_and_reaches_training_configs() -> None:
    from dca.train.config import CreditSettings

    with pytest.raises(ValueError, match="blame, uniform, zero"):
        CreditConfig(policy="signed", negative="sometimes")
    with pytest.raises(ValueError, match="both useful and blamed"):
        CreditConfig(blame_contributions=("error", "solved"))
    with pytest.raises(ValueError, match="'wrong'.*blame_contributions"):
        CreditConfig(blame_contributions=("wrong",))
    settings = CreditSettings.model_validate(
        {"policy": "signed", "negative": "zero", "blame_contributions": ["error"], "blame_dependents": True}
    )
    config = settings.to_credit_config()
    assert (config.policy, config.negative, config.blame_contributions, config.blame_dependents) == (
        "signed", "zero", ("error",), True,
    )  # fmt: skip
    assert CreditSettings(policy="signed-random").to_credit_config().policy == "signed-random"


def run_signed_case(tokenizer, case, policy: str, **options) -> tuple[Credit, list[tuple[int, int]], Review]:
    text, answer_span, labels, advantage, with_eos = case
    ids = encode(tokenizer, text) + ([tokenizer.eos_token_id] if with_eos else [])
    spans = token_char_spans(tokenizer, ids, text)
    review = review_of(text, labels)
    credit = compute_credit(
        trace_id="case", text=text, token_spans=spans, review=review, sequence_advantage=advantage,
        answer_span=answer_span, config=CreditConfig(policy=policy, **options),
    )  # fmt: skip
    return credit, spans, review


@_settings
@given(case=credit_cases(), policy=st.sampled_from(["signed", "signed-random"]),
       blame=st.sampled_from([("error", "failed_attempt"), ("error",), ("irrelevant", "error")]))  # fmt: skip
def test_signed_conserves_and_signs_land_only_where_labels_say(smollm_tokenizer, case, policy, blame) -> None:
    text, answer_span, labels, advantage, _ = case
    credit, spans, review = run_signed_case(smollm_tokenizer, case, policy, blame_contributions=blame, max_weight=None)
    assert math.isclose(sum(credit.token_advantages), credit.uniform_sum, rel_tol=1e-9, abs_tol=1e-9)
    assert all(a * advantage >= 0 for a in credit.token_advantages)  # never a flipped sign
    targets = blame if advantage < 0 else CreditConfig().useful_contributions
    has_target = any(label in targets for label in labels)
    if not has_target:
        # Fallbacks: nothing to credit (or blame) is plain GRPO, recorded.
        assert credit.fallback is not None
        assert credit.token_advantages == [advantage] * len(spans)
        return
    assert credit.fallback is None
    if policy == "signed-random" or advantage == 0:
        return
    for span, value in zip(spans, credit.token_advantages):
        if span[0] == span[1] or overlaps(span, answer_span):
            continue
        for unit, label in zip(review.units, labels):
            if unit.start <= span[0] and span[1] <= unit.end:  # wholly inside one unit
                assert (value != 0) == (label in targets), (label, text[span[0]:span[1]])
    # The unit sums add up to the tokens that belong to a unit.
    assert math.isclose(sum(credit.unit_advantages),
                        sum(a for (s, e), a in zip(spans, credit.token_advantages) if s < e),
                        rel_tol=1e-9, abs_tol=1e-9)  # fmt: skip


@_settings
@given(case=credit_cases())
def test_signed_random_credits_about_as_many_tokens_as_signed(smollm_tokenizer, case) -> None:
    signed, _, review = run_signed_case(smollm_tokenizer, case, "signed")
    control, _, _ = run_signed_case(smollm_tokenizer, case, "signed-random")
    assume(signed.fallback is None and case[3] != 0)
    assert control.fallback is None
    largest = max(len(u.text) for u in review.units)  # a unit has at most this many tokens
    assert abs(control.credited_tokens - signed.credited_tokens) <= largest + len(review.units)


@_settings
@given(case=credit_cases(), negative=st.sampled_from(["uniform", "zero"]))
def test_signed_negative_options_ignore_the_review(smollm_tokenizer, case, negative) -> None:
    credit, spans, _ = run_signed_case(smollm_tokenizer, case, "signed", negative=negative)
    advantage = case[3]
    assume(advantage < 0)
    assert credit.fallback is None
    assert credit.token_advantages == [advantage if negative == "uniform" else 0.0] * len(spans)
