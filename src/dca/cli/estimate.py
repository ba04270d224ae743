"""`dca review --estimate` and `dca train --estimate`: what the reviews will cost, before
anything runs (see `dca.review.estimate`).

    dca review --traces runs/x/traces.jsonl --reviewers reviewers.yaml --estimate
    dca train --config run.yaml --estimate
    dca train --spec experiments/demo.yaml --estimate        # every arm x seed of an experiment

`dca review` estimates on a sample of the real completions it will review; `dca train` on gold
CoTs of its problems (no model has run yet), one review per sampled completion
(steps x prompts per step x completions per prompt, per reviewer).
"""

from __future__ import annotations

import argparse
import json
import random

from ..domains import domain_of
from ..domains.sources import load_problems
from ..errors import UserError
from ..records import Trace
from ..segment import segment
from ..train.config import load_train_config
from .common import _out_file

#: Completions the estimate builds prompts for (the mean per call is scaled to all calls).
DEFAULT_SAMPLE = 32


def add_review_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--estimate", action="store_true", help="print the reviewer calls, tokens and cost this review would take, then stop (nothing is called)")
    p.add_argument("--estimate-sample", type=int, default=DEFAULT_SAMPLE, help=f"completions the estimate builds prompts for (default {DEFAULT_SAMPLE})")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--estimate", action="store_true", help="print the reviewer calls, tokens and cost of the run's reviews, then stop (no training)")
    p.add_argument("--spec", default=None, help="with --estimate: an experiment spec (every arm x seed) instead of --config")
    p.add_argument("--estimate-sample", type=int, default=DEFAULT_SAMPLE, help=f"gold CoTs the estimate builds prompts for (default {DEFAULT_SAMPLE})")


def _sample_size(args: argparse.Namespace) -> int:
    if args.estimate_sample < 1:
        raise UserError("--estimate-sample must be at least 1")
    return args.estimate_sample


def review_estimate(args: argparse.Namespace) -> int:
    from ..review import load_reviewers  # start-up: the review stack loads only when this command runs
    from ..review.batch import load_review_items
    from ..review.estimate import estimate_reviews

    size = _sample_size(args)
    json_out = _out_file(args.summary_json, args, args.traces, args.problems, args.reviewers, flag="--summary-json") if args.summary_json else None
    specs = load_reviewers(args.reviewers, only=args.reviewer)
    items = load_review_items(args.traces, args.problems, limit=args.limit)
    estimate = estimate_reviews(items[:size], specs, calls=len(items))
    _finish(estimate, f"estimated reviews of {len(items)} traces (prompts built for {min(size, len(items))})", json_out)
    return 0


def gold_items(problems, count: int, seed: int = 0):
    """Review items of gold CoTs of the first `count` problems: a domain's gold-CoT renderer,
    else a reference solution's lines (GSM8K) and the answer."""
    from ..review.base import ReviewItem  # start-up: the review stack loads only when this command runs

    rng = random.Random(seed)
    items = []
    for problem in problems[:count]:
        renderer = domain_of(problem).gold_cot
        if renderer is not None:
            text = renderer(problem, 0.3, rng).text
        elif problem.reference_steps:
            text = "\n".join(s.text for s in problem.reference_steps) + f"\nAnswer: {problem.answer}"
        else:
            continue
        trace = Trace(id=f"{problem.id}/gold", problem_id=problem.id, prompt="", completion=text, outcome="correct", answer=problem.answer)
        items.append(ReviewItem(problem=problem, trace=trace, units=segment(text)))
    if not items:
        raise UserError("the estimate needs problems with gold CoTs or reference solutions; these have neither")
    return items


def config_estimate(config, size: int) -> dict:
    """The estimate of one training run's reviews."""
    from ..review import builtin_spec, load_reviewers  # start-up: the review stack loads only when this command runs
    from ..review.estimate import estimate_reviews

    if config.reviewers_file is None:
        specs = [builtin_spec(name) for name in config.reviewer_names]
    else:
        specs = load_reviewers(config.reviewers_file, only=config.reviewer_names)
    g = config.grpo
    calls = g.steps * g.prompts_per_step * g.num_generations
    return estimate_reviews(gold_items(load_problems(config.problems), size, config.seed), specs, calls=calls)


def train_estimate(args: argparse.Namespace) -> int:
    from ..review.estimate import sum_estimates  # start-up: the review stack loads only when this command runs

    size = _sample_size(args)
    if args.spec is not None:
        from ..experiment.spec import load_spec

        spec = load_spec(args.spec)
        estimates = [
            config_estimate(spec.arm_config(arm, seed), size)
            for arm, arm_spec in spec.arms.items() if arm_spec.method == "grpo"
            for seed in spec.seeds
        ]  # fmt: skip
        if not estimates:
            raise UserError(f"experiment spec {args.spec} has no GRPO arm: nothing is reviewed in training")
        estimate = sum_estimates(estimates)
        title = f"estimated training reviews of {len(estimates)} runs (arms x seeds) of {args.spec}"
    elif args.config is not None:
        estimate = config_estimate(load_train_config(args.config), size)
        title = f"estimated training reviews of {args.config}"
    else:
        raise UserError("--estimate needs --config run.yaml or --spec experiment.yaml")
    _finish(estimate, title, None)
    return 0


def _finish(estimate: dict, title: str, json_out) -> None:
    from ..review.estimate import print_estimate  # start-up: the review stack loads only when this command runs

    print_estimate(estimate, title)
    if json_out is not None:
        json_out.write_text(json.dumps(estimate, indent=2) + "\n", encoding="utf-8")
