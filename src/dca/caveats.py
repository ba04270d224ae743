"""Warnings where a figure would mislead: printed once, and recorded beside the figures.

A command that prints a figure computed from degenerate input (one usable reviewer, groups
that all had zero reward variance, answers that are mostly format failures) also prints why
the figure says less than it seems to, as ``dca: warning: ...`` on stderr, and records the
same line under ``"warnings"`` in the JSON it writes (a run's ``summary.json``, ``eval.json``,
an agreement report), so that a reader of the files alone sees it too. Never silent.
"""

from __future__ import annotations

import sys

#: Share of format failures above which an evaluation's accuracy mostly measures the format.
FORMAT_FAILURE_WARNING = 0.5


def warn(message: str, record: list[str] | None = None) -> None:
    """Print `message` as a warning (stderr) and append it to `record` (a summary's list)."""
    print(f"dca: warning: {message}", file=sys.stderr, flush=True)
    if record is not None and message not in record:
        record.append(message)


def format_failure_warning(figures: dict, what: str) -> str | None:
    """The warning for an evaluation (`dca.rollout.summarize` figures) whose answers are mostly
    format failures: its accuracy is then a measure of the answer format, not of reasoning."""
    share = figures.get("format_failures") or 0.0
    if share <= FORMAT_FAILURE_WARNING:
        return None
    return (
        f"{what}: {share:.0%} of the answers are format failures (no 'Answer:' line the checker could read), so the accuracy "
        "mostly measures the answer format; warm-start the model first (a config's warmstart: settings, or `dca warmstart`)"
    )


def zero_variance_warning(metrics: list[dict], *, model: str, warmstarted: bool) -> str | None:
    """The warning for a training run in which some optimizer step had zero reward variance in
    every group (TRL's ``frac_reward_zero_std`` = 1): no completion had an advantage there, so
    that step learnt nothing. `metrics` are the run's ``metrics.jsonl`` rows."""
    steps = [row for row in metrics if "frac_reward_zero_std" in row]
    flat = [row["step"] for row in steps if row["frac_reward_zero_std"] >= 1.0]
    if not flat:
        return None
    if warmstarted:
        fix = "warm-start longer (warmstart.steps), sample more completions (grpo.num_generations) or train on easier problems"
    else:
        fix = f"warm-start first: add `warmstart: {{steps: 40}}` to the config, or run `dca warmstart --model {model}` and train from its checkpoint"
    which = "every step" if len(flat) == len(steps) else f"{len(flat)} of {len(steps)} steps (first: step {flat[0]})"
    return f"nothing to learn: in {which} every group's completions had the same reward (zero advantage); {fix}"
