"""The two conditions of the micro experiment: whether padding costs anything.

- ``padding-free``: the completion length limit sits well above any padded gold CoT (1.25 x
  the longest gold CoT of the training problems with every padding kind at rate 1), so a
  model may pad as much as it likes without truncation;
- ``padding-costs``: the limit is 1.3 x the mean *unpadded* gold CoT length, so padding risks
  truncation, hence no ``Answer:`` line and a zero reward.

Both limits are counted in micro tokens (the tokenizer every micro checkpoint carries), from
the run's own training problems, and set the run's ``grpo.max_completion_length``.
"""

from __future__ import annotations

import math
import random

from ..measures import token_counter
from ..problems.gold import PaddingRates, render_gold_cot
from ..records import Problem
from .vocabulary import load_micro_tokenizer

CONDITIONS = ("padding-free", "padding-costs")
COSTS_FACTOR = 1.3
FREE_FACTOR = 1.25


def gold_lengths(problems: list[Problem]) -> dict[str, list[int]]:
    """Micro-token lengths of each problem's gold CoT, unpadded and with all padding at rate 1
    (each followed by the end-of-turn token the model must also write)."""
    count = token_counter(load_micro_tokenizer())
    full = PaddingRates(restatement=1.0, off_path=1.0, check=1.0)
    lengths: dict[str, list[int]] = {"unpadded": [], "padded": []}
    for problem in problems:
        rng = random.Random(problem.id)
        for key, padding in (("unpadded", None), ("padded", full)):
            text = render_gold_cot(problem, rng=rng, padding=padding).text
            lengths[key].append(count(text) + 1)
    return lengths


def length_limit(condition: str, problems: list[Problem]) -> int:
    """The completion length limit of `condition` for these training problems."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    lengths = gold_lengths(problems)
    if condition == "padding-free":
        return math.ceil(FREE_FACTOR * max(lengths["padded"]))
    return math.ceil(COSTS_FACTOR * sum(lengths["unpadded"]) / len(lengths["unpadded"]))
