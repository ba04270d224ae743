"""The reviewer-free control: a length-aware reward among correct completions.

A DCA arm must beat what a plain length penalty gets for free to be worth a reviewer. This
reward keeps the verifier's outcome and, among the *correct* completions of a group, lowers the
reward of the longer ones: a correct completion of ``L`` tokens gets

    1 - strength * (L - L_min) / (L_max - L_min)

with ``L_min`` / ``L_max`` the shortest / longest correct completion of its group (1 when they
are equal); a wrong one keeps its verifier reward (0). So every correct completion still beats
every wrong one, and within the correct ones the shortest is preferred.

It is in the spirit of ShorterBetter (Yi et al. 2025, arXiv:2504.21370: reward the distance to
the group's shortest correct length) and L1 (Aggarwal & Welleck 2025, arXiv:2503.04697: a length
term in the reward), and of Kimi k1.5's length penalty (min-max normalized within the group).
Where it departs: no target length in the prompt (L1), no penalty on wrong completions
(ShorterBetter, Kimi), and lengths are normalized to the group's correct range.

It changes the *reward* (and so the group-normalized advantage), not the credit: it trains with
``uniform`` credit and needs no reviewer. Groups are found by problem id within each call of the
reward function (TRL calls it per process on whole groups when a process holds whole groups, as
in every single-process run; a group split over processes is compared within each part).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

__all__ = ["length_penalized", "train_reward"]


def length_penalized(rewards: Sequence[float], lengths: Sequence[int], groups: Sequence[str], strength: float) -> list[float]:
    """`rewards` with each correct (reward >= 1) completion's reward lowered by its length
    within its group (see the module docstring)."""
    out = [float(r) for r in rewards]
    by_group: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        if rewards[i] >= 1.0:
            by_group.setdefault(group, []).append(i)
    for members in by_group.values():
        shortest = min(lengths[i] for i in members)
        longest = max(lengths[i] for i in members)
        if longest > shortest:
            for i in members:
                out[i] = out[i] - strength * (lengths[i] - shortest) / (longest - shortest)
    return out


def train_reward(config: Any, outcome: Callable[..., list[float]]) -> Callable[..., list[float]]:
    """The run's TRL reward function: `outcome`, length-penalized when the config asks."""
    settings = getattr(config, "length_penalty", None)
    if settings is None:
        return outcome

    def length_penalized_reward(completions: list, problem_id: list[str], completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        rewards = outcome(completions=completions, problem_id=problem_id, completion_ids=completion_ids, **kwargs)
        return length_penalized(rewards, [len(ids) for ids in completion_ids], problem_id, settings.strength)

    return length_penalized_reward
