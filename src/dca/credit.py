"""Credit: turn a review and a sequence advantage into per-token advantages.

GRPO gives every completion token the same advantage ``A`` (the group-normalized reward).
DCA keeps ``A`` but chooses *which* tokens carry it, using a reviewer's (or a consensus's)
label for each unit of the completion:

- ``uniform``: every token gets ``A``; plain GRPO, the baseline arm.
- ``mask``: tokens of units whose contribution is useful (``CreditConfig.useful_contributions``)
  get ``A``, all others 0. The trace's total advantage shrinks.
- ``conserve``: like ``mask``, rescaled by ``N / credited`` so the trace's total
  ``sum(token advantages) == N * A`` is the same as under ``uniform``: the reward is
  redistributed, never created, so gaming the reviewer cannot raise it (DESIGN.md).
- ``random``: the control for ``conserve``; credits about as many tokens as ``mask`` would,
  on randomly chosen units (seeded by ``CreditConfig.seed`` and the trace id), rescaled the
  same way. It separates "which tokens" from "fewer tokens, larger weights".
- ``signed``: the sign of ``A`` decides where it goes. A positive advantage goes to the
  useful units exactly as under ``conserve``. A negative advantage (a completion worse than
  its group) goes to the units the reviewers *blame* (``CreditConfig.blame_contributions``,
  by default ``error`` and ``failed_attempt``; with ``blame_dependents`` also the units of
  every step that depends, directly or through other steps, on a blamed step), rescaled so
  the trace total is ``N * A`` as under ``conserve``. A failed trace with nothing to blame
  falls back to uniform (`Credit.fallback` says so). ``CreditConfig.negative`` chooses the
  negative side: ``blame`` (the default, above), ``uniform`` (plain GRPO for worse-than-group
  completions) or ``zero`` (the seed's literal reading: failed completions train nothing).
- ``signed-random``: the control for ``signed``; on each side it credits about as many
  tokens as ``signed`` would, on random units, rescaled the same way (the ``uniform`` and
  ``zero`` negative sides are the same as under ``signed``).

Why ``signed`` (issue 10): under ``mask`` and ``conserve`` a failed completion's negative
advantage lands on the units reviewers call useful -- the correct steps -- while the
``error`` step gets none of it, so the model learns to avoid correct steps that happened to
appear in failed attempts. ``signed`` puts the penalty on the step that went wrong.
Alternatives, all selectable for an experiment: ``negative: uniform`` (penalize every token
of a failed completion, as GRPO does), ``negative: zero`` (learn only from successes; the
group's mean still moves through the positive side), and blaming more units
(``blame_contributions`` with ``irrelevant``, or ``blame_dependents``: the steps built on
the first error are wrong too, though often correctly computed from a wrong input).

Rules shared by all policies:

- A token belongs to the unit holding its first non-whitespace character (an all-whitespace
  token: its first character), so " 14" belongs to the unit of "14" even though its space
  may end the unit before.
- The final-answer span (``answer_span``) always carries credit: every token overlapping it is
  credited, whatever the review says (also under ``random``, and under ``signed`` on both
  sides: a wrong final answer is blamed with the step that led to it).
- Zero-width tokens (EOS and other special tokens, see `token_char_spans`) go with the final
  answer span; without one, with the last unit.
- A consensus whose reviewers dispute some units and agree on no useful one trains on
  nothing (all zeros, ``disputed="mask"``): DCA trains only where reviewers agree.
- The policy falls back to ``uniform`` when there is no review, the review failed, or the
  review marks no unit useful (conserve would otherwise pile the whole ``N * A`` onto the few
  answer tokens) -- under ``signed`` with a negative advantage: blames no unit;
  `Credit.fallback` records why.
- A unit labelled ``unverified`` (the reviewer could not check it, `records.UNVERIFIED`) is
  treated as a unit without a label: never credited, never blamed, and it cannot be named
  among the useful or blamed contributions.
- A `Consensus` is consumed like a review: only agreed units carry labels. Its *disputed*
  units (`Consensus.disputed_units`) are masked by default (``CreditConfig.disputed="mask"``:
  they count as not useful, and ``random`` never draws them). With ``disputed="uniform"``
  their tokens keep the plain GRPO advantage ``A`` and the policy applies to the other tokens
  only (``conserve`` and ``random`` then keep the total of the non-disputed tokens, so the
  trace total is still ``N * A``).

Tokens are mapped to characters by `token_char_spans`, exact for byte-level BPE tokenizers
(GPT-2, Llama 3, Qwen, SmolLM2) including characters split across tokens: every token that
holds a byte of a character spans that character, so the tokens of an emoji or a CJK
character all belong to the unit of that character.

`Credit.unit_advantages` sums the token advantages per unit (a token counted in the unit of
its first non-whitespace character, answer tokens included), so the viewer can show where
the credit went on the text itself.

This module is part of the torch-free core: it takes and returns plain lists.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass
from typing import Any, Sequence

from dca.records import CONTRIBUTIONS, UNVERIFIED, USEFUL_CONTRIBUTIONS, Consensus, Credit, Review, Unit

__all__ = [
    "BLAME_CONTRIBUTIONS",
    "DISPUTED_CHOICES",
    "NEGATIVE_CHOICES",
    "POLICIES",
    "SIGNED_POLICIES",
    "CreditConfig",
    "compute_credit",
    "credit_statistics",
    "token_char_spans",
]

#: Valid values of `CreditConfig.policy`.
POLICIES = ("uniform", "mask", "conserve", "random", "signed", "signed-random")

#: Policies that treat a negative advantage apart (see the module docstring).
SIGNED_POLICIES = ("signed", "signed-random")

#: Valid values of `CreditConfig.negative`: where a signed policy puts a negative advantage.
NEGATIVE_CHOICES = ("blame", "uniform", "zero")

#: Contributions a signed policy blames by default.
BLAME_CONTRIBUTIONS = ("error", "failed_attempt")

#: Valid values of `CreditConfig.disputed`: what a consensus's disputed units receive.
DISPUTED_CHOICES = ("mask", "uniform")


# ---------------------------------------------------------------------------------------------
# Token -> character alignment


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte 0..255 as a printable unicode character.

    Printable Latin-1 bytes stand for themselves; the others are shifted to ``256 + n``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


#: Inverse of the byte-level alphabet: token character -> byte.
_BYTE_OF_CHAR = {char: byte for byte, char in _bytes_to_unicode().items()}


def _is_byte_level(tokenizer: Any) -> bool:
    """Whether `tokenizer` is a byte-level BPE whose token strings spell bytes (GPT-2 style)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return False
    from tokenizers.decoders import ByteLevel  # installed with transformers; no torch

    return isinstance(decoder, ByteLevel)


def _byte_level_token_bytes(tokenizer: Any, token_ids: Sequence[int]) -> list[bytes | None]:
    """The exact bytes each token stands for; None for ids the tokenizer does not know.

    Vocabulary tokens are spelled in the byte-level alphabet; added tokens (special or not)
    are stored as their literal text, so their bytes are that text's UTF-8.
    """
    added = {i: t.content for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    pieces = tokenizer.convert_ids_to_tokens(list(token_ids))
    result: list[bytes | None] = []
    for token_id, piece in zip(token_ids, pieces):
        if token_id in added:
            result.append(added[token_id].encode("utf-8"))
        elif piece is None or any(c not in _BYTE_OF_CHAR for c in piece):
            result.append(None)
        else:
            result.append(bytes(_BYTE_OF_CHAR[c] for c in piece))
    return result


def _byte_level_spans(tokenizer: Any, token_ids: Sequence[int], text: str) -> list[tuple[int, int]]:
    """`token_char_spans` for byte-level tokenizers, in O(len(text) + len(token_ids))."""
    # char_start[b]: the character holding byte b (a token starting inside a character spans
    # it: the token helps spell it); char_end[b]: the character offset a token ending just
    # before byte b reaches (the next character when b is inside one).
    encoded = bytearray()
    char_start: list[int] = []
    char_end: list[int] = []
    for index, char in enumerate(text):
        char_bytes = char.encode("utf-8", "surrogatepass")
        encoded += char_bytes
        char_start += [index] * len(char_bytes)
        char_end += [index] + [index + 1] * (len(char_bytes) - 1)
    char_start.append(len(text))
    char_end.append(len(text))

    end = len(text)
    spans = []
    position = 0  # byte offset in `encoded` where the next token must match
    for token_bytes in _byte_level_token_bytes(tokenizer, token_ids):
        if token_bytes and encoded.startswith(token_bytes, position):
            next_position = position + len(token_bytes)
            spans.append((char_start[position], char_end[next_position]))
            position = next_position
        else:
            # Special tokens (text is decoded without them), unknown ids, and bytes that the
            # text does not hold at this point (e.g. a character cut off by the length limit,
            # decoded as U+FFFD): no characters; later tokens still match from `position`.
            spans.append((end, end))
    return spans


def _prefix_decoding_spans(
    tokenizer: Any, token_ids: Sequence[int], text: str
) -> list[tuple[int, int]]:
    """`token_char_spans` for any tokenizer with `decode`: O(n^2) prefix decoding.

    Token i ends where the decoded prefix ``ids[:i+1]`` stops agreeing with `text`; spans are
    kept monotone, so a token whose text was dropped or altered gets a zero-width span.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    end = len(text)
    spans = []
    previous_end = 0
    for i, token_id in enumerate(token_ids):
        if token_id in special:
            spans.append((end, end))
            continue
        prefix = tokenizer.decode(list(token_ids[: i + 1]), skip_special_tokens=True)
        agreed = 0
        for a, b in zip(prefix, text):
            if a != b:
                break
            agreed += 1
        token_end = max(previous_end, agreed)
        if token_end == previous_end < end and prefix[agreed : agreed + 1] == "\ufffd":
            # Part of a character the next tokens complete: the token helps spell it.
            spans.append((previous_end, previous_end + 1))
            continue
        spans.append((previous_end, token_end))
        previous_end = token_end
    return spans


def token_char_spans(tokenizer: Any, token_ids: list[int], text: str) -> list[tuple[int, int]]:
    """Each token's half-open character span in `text`, the decoded completion.

    For byte-level BPE tokenizers the spans are exact: each token's bytes come from its
    byte-level spelling, and byte offsets map to character offsets. A character split over
    several tokens (emoji, CJK) is in the span of every token holding one of its bytes, so
    consecutive spans overlap by that character and no token that helps spell a character
    is left with an empty span. Tokens whose bytes are not in `text` at that point, such as
    EOS and other special tokens, get a zero-width span at the end of `text`. Other
    tokenizers fall back to incremental prefix decoding (a token whose prefix decodes to an
    incomplete character spans that character).

    Spans of the tokens that are found in `text` are in order, each starting at or before
    the previous one's end; when ``text == tokenizer.decode(token_ids,
    skip_special_tokens=True)`` they cover `text`.
    """
    if _is_byte_level(tokenizer):
        return _byte_level_spans(tokenizer, token_ids, text)
    return _prefix_decoding_spans(tokenizer, token_ids, text)


# ---------------------------------------------------------------------------------------------
# Credit


@dataclass(kw_only=True)
class CreditConfig:
    """How a review is turned into per-token advantages."""

    policy: str = "conserve"
    """``uniform`` (plain GRPO), ``mask``, ``conserve``, ``random``, ``signed`` or
    ``signed-random`` (see the module docstring)."""
    useful_contributions: tuple[str, ...] = USEFUL_CONTRIBUTIONS
    """Contribution labels whose units are credited (a signed policy's positive side)."""
    blame_contributions: tuple[str, ...] = BLAME_CONTRIBUTIONS
    """Contribution labels whose units carry a negative advantage under a signed policy."""
    blame_dependents: bool = False
    """Signed policies: also blame the units of steps that depend (directly or through other
    steps, by `Step.depends_on`) on a blamed step."""
    negative: str = "blame"
    """Signed policies: where a negative advantage goes: ``blame`` (the blamed units),
    ``uniform`` (every token, as plain GRPO) or ``zero`` (nowhere: failed completions train
    nothing)."""
    seed: int = 0
    """Seed of the ``random`` policy (combined with each trace id)."""
    disputed: str = "mask"
    """What the disputed units of a `Consensus` receive: ``mask`` (no credit, as if not
    useful) or ``uniform`` (the plain GRPO advantage). Single reviews have no disputed units."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(
                f"unknown credit policy {self.policy!r}; choose one of {', '.join(POLICIES)}"
            )
        if self.disputed not in DISPUTED_CHOICES:
            raise ValueError(
                f"unknown disputed-units treatment {self.disputed!r}; "
                f"choose one of {', '.join(DISPUTED_CHOICES)}"
            )
        if self.negative not in NEGATIVE_CHOICES:
            raise ValueError(
                f"unknown negative-advantage treatment {self.negative!r}; "
                f"choose one of {', '.join(NEGATIVE_CHOICES)}"
            )
        for name in ("useful_contributions", "blame_contributions"):
            labels = tuple(getattr(self, name))
            setattr(self, name, labels)
            unknown = [c for c in labels if c not in CONTRIBUTIONS]
            if unknown:
                raise ValueError(
                    f"unknown contribution label(s) {unknown} in {name}; "
                    f"choose from {', '.join(CONTRIBUTIONS)}"
                )
            # Issue 22: `unverified` is no judgement; it is treated as a missing label.
            if UNVERIFIED in labels:
                raise ValueError(f"{name} cannot hold {UNVERIFIED!r}: an unverified unit counts as unlabelled (neither credited nor blamed)")
        overlap = set(self.useful_contributions) & set(self.blame_contributions)
        if overlap:
            raise ValueError(
                f"contribution label(s) {sorted(overlap)} are both useful and blamed; "
                "a unit cannot be both"
            )


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
    """Per-token advantages for one trace's N = ``len(token_spans)`` completion tokens.

    `token_spans` come from `token_char_spans`; `review.units` must be units of `text`
    (from `dca.segment.segment`); `answer_span` is the final answer's character span in
    `text`, or None when no answer was extracted. Raises ValueError when spans do not fit
    `text`. `Credit.credited_tokens` counts the tokens selected to carry the advantage, even
    when the advantage itself is 0.
    """
    _check_spans(text, token_spans, review, answer_span)
    n_tokens = len(token_spans)
    units = list(review.units) if review is not None else []
    token_units = _token_units(text, token_spans, units, answer_span)

    def result(weights: list[float], fallback: str | None = None, counted: list[bool] | None = None) -> Credit:
        advantages = [sequence_advantage * w for w in weights]
        return Credit(
            trace_id=trace_id,
            policy=config.policy,
            sequence_advantage=sequence_advantage,
            token_advantages=advantages,
            credited_tokens=sum(counted) if counted is not None else sum(1 for w in weights if w != 0),
            fallback=fallback,
            unit_advantages=_unit_sums(text, token_spans, units, advantages),
        )

    uniform = [1.0] * n_tokens
    if config.policy == "uniform" or n_tokens == 0:
        return result(uniform)
    negative_side = config.policy in SIGNED_POLICIES and sequence_advantage < 0
    if negative_side and config.negative == "uniform":
        return result(uniform)
    if negative_side and config.negative == "zero":
        return result([0.0] * n_tokens)
    if review is None:
        return result(uniform, fallback="no review")
    if getattr(review, "status", "ok") == "failed":
        return result(uniform, fallback=f"review failed: {getattr(review, 'error', None)}")

    if negative_side:
        chosen = _blamed_units(review, config)
        what = "blamed"
        nothing = f"nothing blamed: the review labels no unit {' or '.join(config.blame_contributions)}"
    else:
        labels = review.unit_contributions()
        chosen = {i for i, label in enumerate(labels) if label in config.useful_contributions}
        what = "useful"
        nothing = "nothing credited: the review marks no unit useful"
    disputed = set(getattr(review, "disputed_units", ()))
    kept = disputed if config.disputed == "uniform" else set()
    credited = [unit == _ANSWER or unit in chosen for unit in token_units]
    if not any(unit in chosen for unit in token_units) and config.disputed == "mask" and disputed:
        # Reviewers disagree and agree on no useful (blamed) unit: DCA trains only where they
        # agree, so this trace trains on nothing (rather than on everything, as plain GRPO would).
        return result([0.0] * n_tokens, fallback=f"not trained: reviewers agree on no {what} unit")
    if not any(unit in chosen for unit in token_units):
        # Only the answer (or nothing) would be credited: conserve would then pile the whole
        # N * A onto a few answer tokens. Plain GRPO credit is the safer reading of such a review.
        return result(uniform, fallback=nothing)

    # Tokens of disputed units kept at the plain advantage (disputed="uniform"); the answer
    # span wins over them. The policy below shares out the rest.
    fixed = [unit != _ANSWER and unit in kept for unit in token_units]
    if config.policy in ("random", "signed-random"):
        target = sum(credited)
        pool = [None if unit in disputed else unit for unit in token_units]  # never drawn
        credited = _random_units_credit(pool, target, _stable_seed(config.seed, trace_id))

    if config.policy == "mask":
        return result([1.0 if c or f else 0.0 for c, f in zip(credited, fixed)])
    # conserve, random and the signed policies: the total stays N * A (fixed tokens carry A).
    scale = (n_tokens - sum(fixed)) / sum(credited)
    weights = [1.0 if f else scale if c else 0.0 for c, f in zip(credited, fixed)]
    return result(weights, counted=[c or f for c, f in zip(credited, fixed)])


def _blamed_units(review: Review | Consensus, config: CreditConfig) -> set[int]:
    """Units a signed policy blames: labelled with a blamed contribution, and with
    ``blame_dependents`` the units of every step depending on a blamed step."""
    labels = review.unit_contributions()
    blamed = {i for i, label in enumerate(labels) if label in config.blame_contributions}
    if config.blame_dependents and blamed:
        blamed_steps = {s.index for s in review.steps if s.contribution in config.blame_contributions}
        for step in sorted(review.steps, key=lambda s: s.index):  # depends_on points backwards
            if any(d in blamed_steps for d in step.depends_on):
                blamed_steps.add(step.index)
        for step in review.steps:
            if step.index in blamed_steps:
                blamed.update(range(step.first_unit, step.last_unit + 1))
        # A consensus's disputed units carry no agreed label; they are never blamed.
        blamed -= set(getattr(review, "disputed_units", ()))
    return blamed


def _unit_sums(
    text: str, token_spans: list[tuple[int, int]], units: list[Unit], advantages: list[float]
) -> list[float]:
    """Per unit, the sum of the advantages of the tokens that belong to it (answer included)."""
    sums = [0.0] * len(units)
    for owner, value in zip(_token_units(text, token_spans, units, None, zero_width_owner=None), advantages):
        if owner is not None:
            sums[owner] += value
    return sums


#: Marker in `_token_units` for tokens that belong to the final-answer span.
_ANSWER = -1


_LAST_UNIT = object()


def _token_units(
    text: str,
    token_spans: list[tuple[int, int]],
    units: list[Unit],
    answer_span: tuple[int, int] | None,
    zero_width_owner: object = _LAST_UNIT,
) -> list[int | None]:
    """The unit index each token belongs to; `_ANSWER` for the answer span; None if no unit.

    Zero-width (special) tokens go with the answer, else with the last unit (or with
    `zero_width_owner` when given).
    """
    unit_starts = [u.start for u in units]

    def unit_at(char: int) -> int | None:
        if not units or not units[0].start <= char < units[-1].end:
            return None
        return bisect.bisect_right(unit_starts, char) - 1

    if zero_width_owner is _LAST_UNIT:
        if answer_span is not None:
            zero_width_owner = _ANSWER
        else:
            zero_width_owner = len(units) - 1 if units else None

    owners: list[int | None] = []
    for start, end in token_spans:
        if start == end:
            owners.append(zero_width_owner)
            continue
        if answer_span is not None and start < answer_span[1] and end > answer_span[0]:
            owners.append(_ANSWER)
            continue
        first = start
        while first < end and text[first].isspace():
            first += 1
        owners.append(unit_at(first if first < end else start))
    return owners


def _random_units_credit(token_units: list[int | None], target: int, seed: int) -> list[bool]:
    """Credit the answer tokens plus random whole units, about `target` tokens in all.

    Units are drawn in a seeded random order; a unit is taken when it brings the count
    closer to `target` (never further), until the count reaches it. The result is never
    empty: `target` counts at least one useful unit no larger than it, which is always taken.
    """
    credited = [unit == _ANSWER for unit in token_units]
    count = sum(credited)
    sizes: dict[int, int] = {}
    for unit in token_units:
        if unit is not None and unit != _ANSWER:
            sizes[unit] = sizes.get(unit, 0) + 1
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    chosen = set()
    for unit in order:
        if count >= target:
            break
        if count + sizes[unit] - target <= target - count:
            chosen.add(unit)
            count += sizes[unit]
    return [c or unit in chosen for c, unit in zip(credited, token_units)]


def _stable_seed(seed: int, trace_id: str) -> int:
    """A seed that depends on both inputs and is the same in every process (unlike hash())."""
    digest = hashlib.sha256(f"{seed}\x00{trace_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _check_spans(
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


# ---------------------------------------------------------------------------------------------
# Logging


def credit_statistics(credits: list[Credit]) -> dict[str, float]:
    """Aggregate figures over a batch of credits, for logging.

    ``fraction_credited``: credited tokens / all tokens; ``fallbacks``: credits that fell back
    to uniform; ``mean_abs_advantage``: mean |token advantage| over all tokens; ``traces`` and
    ``tokens``: counts.
    """
    tokens = sum(len(c.token_advantages) for c in credits)
    return {
        "traces": float(len(credits)),
        "tokens": float(tokens),
        "fraction_credited": sum(c.credited_tokens for c in credits) / tokens if tokens else 0.0,
        "fallbacks": float(sum(1 for c in credits if c.fallback is not None)),
        "mean_abs_advantage": (
            sum(abs(a) for c in credits for a in c.token_advantages) / tokens if tokens else 0.0
        ),
    }
