"""The incentive audit: what each credit policy teaches a simulated policy about padding.

A completion is a sequence of decisions, each a unit of tokens labelled as an oracle would:

- ``useful``: a step on the solution path (6 tokens, ``essential``); with probability
  `Scenario.error_rate` it is wrong (``error``) and the final answer with it;
- ``pad``: an irrelevant step (6 tokens, ``irrelevant``); in the padding-costly scenario it
  derails the solution with probability `Scenario.pad_error_rate` (then it is an ``error``);
- ``conclude``: the answer line (4 tokens, the answer span; ``solved``, or ``error`` when the
  answer is wrong). Concluding before the problem's K useful steps gives a wrong answer; a
  completion that has not concluded after `Scenario.max_steps` steps is cut off (no answer).

The simulated policy is a softmax over the three decisions with logits
``bias[a] + table[ready, a]`` (``ready``: the K useful steps are done), so what it learns in
one state partly carries to the other, as in a network. It is trained by GRPO: groups of
completions of one problem, group-normalized rewards (1 for a correct answer), and each
decision's log-probability weighted by the advantage of the token the decision is made at
(the unit's first token), as a token-level policy gradient does; the per-token advantages come
from the policy's *registered function* (`dca.credit.POLICIES`) applied to the labels above.

Measured after N updates, on fresh completions: the padding rate (share of steps that are
padding), the trailing-padding rate (share of decisions taken once ready that are padding:
delaying the answer), CoT tokens (before the answer line), and accuracy. Each figure's drift is
its final value minus the start policy's, averaged over seeds (with its standard error); every
arm of one seed sees the same problems and random draws.

`benchmarks/credit_incentives.py` prints the table; `tests/test_credit_incentives.py` runs a
short version as a property test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..credit import ANSWER, POLICIES, CreditConfig, TraceLabels, apply_policy
from ..train.length_reward import length_penalized

__all__ = ["ARMS", "Arm", "Scenario", "SCENARIOS", "audit", "drift_table"]

PAD, USEFUL, CONCLUDE = 0, 1, 2
STEP_TOKENS = 6
ANSWER_TOKENS = 4


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    error_rate: float = 0.15
    """Chance that a useful step is wrong."""
    pad_error_rate: float = 0.0
    """Chance that a padding step derails the solution (0: padding is free)."""
    max_steps: int = 24
    start_not_ready: tuple[float, float, float] = (0.25, 0.6, 0.15)
    """Start probabilities of pad / useful / conclude before the K useful steps are done."""
    start_ready: tuple[float, float, float] = (0.4, 0.1, 0.5)
    """... and after."""


SCENARIOS = {
    "padding-free": Scenario(name="padding-free"),
    "padding-costly": Scenario(name="padding-costly", pad_error_rate=0.2),
}


@dataclass(frozen=True, kw_only=True)
class Arm:
    """A credit policy with its settings, or the length-penalty reward with uniform credit."""

    name: str
    credit: CreditConfig = field(default_factory=lambda: CreditConfig(policy="uniform"))
    length_penalty: float = 0.0
    """> 0: the reward of `dca.train.length_reward` with this strength."""


def _arms() -> dict[str, Arm]:
    arms = {name: Arm(name=name, credit=CreditConfig(policy=name)) for name in POLICIES}
    arms["signed (uncapped, phase 1)"] = Arm(name="signed (uncapped, phase 1)", credit=CreditConfig(policy="signed", max_weight=None))
    arms["length-penalty"] = Arm(name="length-penalty", length_penalty=0.5)
    return arms


#: Every registered policy with its default settings, the uncapped signed rule, and the
#: length-penalty control.
ARMS = _arms()


@dataclass
class _Completion:
    decisions: list[tuple[int, int]]  # (ready, action)
    labels: TraceLabels
    first_tokens: list[int]  # the token index each decision is made at
    correct: bool
    cot_tokens: int
    tokens: int


def _sample(rng: np.random.Generator, probs: np.ndarray, k: int, scenario: Scenario, trace_id: str) -> _Completion:
    useful_done = 0
    wrong = False
    decisions: list[tuple[int, int]] = []
    token_units: list[int] = []
    unit_labels: list[str] = []
    first_tokens: list[int] = []
    concluded = correct = False
    for _ in range(scenario.max_steps):  # then cut off: no answer
        ready = int(useful_done >= k)
        action = int(rng.choice(3, p=probs[ready]))
        decisions.append((ready, action))
        first_tokens.append(len(token_units))
        unit = len(unit_labels)
        if action == CONCLUDE:
            correct = bool(ready) and not wrong
            unit_labels.append("solved" if correct else "error")
            token_units += [ANSWER] * ANSWER_TOKENS
            concluded = True
            break
        if action == USEFUL:
            failed = rng.random() < scenario.error_rate
            unit_labels.append("error" if failed else "essential")
            useful_done += 1
        else:
            failed = rng.random() < scenario.pad_error_rate
            unit_labels.append("error" if failed else "irrelevant")
        wrong = wrong or failed
        token_units += [unit] * STEP_TOKENS
    labels = TraceLabels(
        trace_id=trace_id,
        token_units=tuple(token_units),
        unit_labels=tuple(unit_labels),
        blamed=frozenset(i for i, label in enumerate(unit_labels) if label == "error"),
    )
    cot = len(token_units) - (ANSWER_TOKENS if concluded else 0)
    return _Completion(decisions, labels, first_tokens, correct, cot, len(token_units))


def _probs(bias: np.ndarray, table: np.ndarray) -> np.ndarray:
    logits = bias[None, :] + table
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _measure(rng: np.random.Generator, probs: np.ndarray, scenario: Scenario, episodes: int) -> dict[str, float]:
    steps = pads = ready_decisions = ready_pads = cot = correct = 0
    for e in range(episodes):
        c = _sample(rng, probs, int(rng.integers(1, 4)), scenario, f"m{e}")
        for ready, action in c.decisions:
            if action != CONCLUDE:
                steps += 1
                pads += action == PAD
            if ready:
                ready_decisions += 1
                ready_pads += action == PAD
        cot += c.cot_tokens
        correct += c.correct
    return {
        "padding_rate": pads / max(steps, 1),
        "trailing_padding_rate": ready_pads / max(ready_decisions, 1),
        "cot_tokens": cot / episodes,
        "accuracy": correct / episodes,
    }


def train(arm: Arm, scenario: Scenario, *, updates: int, seed: int, groups: int = 4, group_size: int = 8, learning_rate: float = 4.0, episodes: int = 1500) -> dict[str, dict[str, float]]:
    """Train the simulated policy with `arm` for `updates` GRPO updates; its start and end figures."""
    table = np.log(np.array([scenario.start_not_ready, scenario.start_ready]))
    bias = np.zeros(3)
    start = _measure(np.random.default_rng(10_000 + seed), _probs(bias, table), scenario, episodes)
    rng = np.random.default_rng(seed)
    for update in range(updates):
        probs = _probs(bias, table)
        batch: list[_Completion] = []
        advantages: list[float] = []
        for g in range(groups):
            k = int(rng.integers(1, 4))
            group = [_sample(rng, probs, k, scenario, f"s{seed}-u{update}-g{g}-{i}") for i in range(group_size)]
            rewards = [float(c.correct) for c in group]
            if arm.length_penalty:
                rewards = length_penalized(rewards, [c.tokens for c in group], ["g"] * group_size, arm.length_penalty)
            r = np.array(rewards)
            std = r.std(ddof=1)
            advantages += list((r - r.mean()) / (std + 1e-4)) if std > 0 else [0.0] * group_size
            batch += group
        credit = apply_policy([c.labels for c in batch], advantages, arm.credit)
        grad_table = np.zeros_like(table)
        grad_bias = np.zeros(3)
        tokens = sum(c.tokens for c in batch)
        for b, c in enumerate(batch):
            for (ready, action), t in zip(c.decisions, c.first_tokens):
                weight = credit.advantages[b, t]
                if weight:
                    g = -probs[ready].copy()
                    g[action] += 1.0
                    grad_table[ready] += weight * g
                    grad_bias += weight * g
        # token-level normalization (TRL's dapo loss): the batch's summed gradient / its tokens
        table += learning_rate * grad_table / tokens
        bias += learning_rate * grad_bias / tokens
    end = _measure(np.random.default_rng(10_000 + seed), _probs(bias, table), scenario, episodes)
    return {"start": start, "end": end}


MEASURES = ("padding_rate", "trailing_padding_rate", "cot_tokens", "accuracy")


def audit(arms: Sequence[Arm], scenario: Scenario, *, updates: int, seeds: Sequence[int], **options) -> dict[str, dict[str, dict[str, float]]]:
    """Per arm and measure: the mean drift over `seeds`, its standard error, and the per-seed
    drifts (``mean``, ``se``, ``drifts``)."""
    out: dict[str, dict[str, dict]] = {}
    for arm in arms:
        per_seed = [train(arm, scenario, updates=updates, seed=s, **options) for s in seeds]
        out[arm.name] = {}
        for m in MEASURES:
            drifts = [r["end"][m] - r["start"][m] for r in per_seed]
            se = float(np.std(drifts, ddof=1) / math.sqrt(len(drifts))) if len(drifts) > 1 else float("nan")
            out[arm.name][m] = {"mean": float(np.mean(drifts)), "se": se, "drifts": drifts, "start": float(np.mean([r["start"][m] for r in per_seed]))}
    return out


def drift_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table of the drifts (mean ± SE over seeds)."""
    header = "| arm | padding rate | trailing-padding rate | CoT tokens | accuracy |\n|---|---|---|---|---|"
    rows = []
    for arm, figures in results.items():
        cells = []
        for m in MEASURES:
            f = figures[m]
            scale, unit = (1, "") if m == "cot_tokens" else (100, " pt")
            cells.append(f"{scale * f['mean']:+.1f} ± {scale * f['se']:.1f}{unit}")
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join([header, *rows])


def with_settings(arm: Arm, **credit_options) -> Arm:
    """`arm` with other credit settings (e.g. another ``max_weight``), renamed to say so."""
    label = ", ".join(f"{k}={v}" for k, v in credit_options.items())
    return replace(arm, name=f"{arm.name} ({label})", credit=replace(arm.credit, **credit_options))
