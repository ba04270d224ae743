"""The shared start checkpoint of an experiment, and what it measures before any arm trains.

Start models:

- ``embedded``, a checkpoint directory or a hub id: used as is;
- ``tiny``: `dca.model.build_tiny_model` (a random model: plumbing checks only);
- ``micro``: the micro world's model (`dca.micro`): a Llama of about a million parameters
  built from `MicroSettings` with the task's own word-level tokenizer, trained *from scratch*
  by the warm start on gold CoTs padded by kind (the micro recipe `MICRO_WARMSTART` unless the
  spec gives ``start.warmstart``). Base and warm start are cached, so experiments share them.

The warm start (`dca.train.warmstart`, cached by its settings) renders gold CoTs with
irrelevant steps at ``irrelevant_rate``, so the start model writes padding that credit can
learn to remove. `measure_start` then records the start model's greedy accuracy, its sampled
accuracy at the training temperature, and the share of GRPO-sized groups whose rewards vary
(only those carry an advantage): ``start/start.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ..files import write_jsonl
from ..measures import token_counter
from ..model import SamplingConfig, build_tiny_model, load_model, resolve_model_path
from ..problems.gold import padding_kind
from ..records import Problem
from ..review import review_traces, reviewer_for
from ..rollout import rollout, summarize
from ..train.micro import MICRO_WARMSTART, micro_start
from ..train.run import group_variance_fraction
from ..train.warmstart import warmstart
from .measures import trace_measures
from .spec import ExperimentSpec

Log = Callable[[str], None]


def parameter_count(path: str | Path) -> dict[str, int]:
    model, _ = load_model(str(path))
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return {"parameters": total, "embedding": embedding, "body": total - embedding}


def base_model(spec: ExperimentSpec, start_dir: Path) -> str:
    """The start model before the warm start (built under `start_dir` for tiny; micro starts come from `dca.train.micro`)."""
    name = spec.start.model
    if name != "tiny":
        return resolve_model_path(name)
    target = start_dir / f"{name}-base"
    if not (target / "config.json").exists():
        build_tiny_model(target)
    return str(target)


def prepare_start(spec: ExperimentSpec, start_dir: Path, *, log: Log = print) -> tuple[str, dict]:
    """The start checkpoint's path and its record (``start/start.json``), made once per experiment."""
    record_file = start_dir / "start.json"
    if record_file.exists():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if Path(record["checkpoint"], "config.json").exists():
            return record["checkpoint"], record
    start_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    recipe = spec.start.warmstart
    if spec.start.model == "micro":
        recipe = recipe or MICRO_WARMSTART
        base = "micro"
        checkpoint = str(micro_start(spec.start.micro, recipe, log=log))
    else:
        base = base_model(spec, start_dir)
        checkpoint = str(warmstart(base, recipe, log=log)) if recipe is not None else base
    record = {
        "model": spec.start.model,
        "base": base,
        "checkpoint": checkpoint,
        "warmstart": recipe.model_dump(mode="json") if recipe else None,
        "warmstart_seconds": round(time.time() - started, 1),
        **parameter_count(checkpoint),
    }
    return checkpoint, record


def measure_start(
    checkpoint: str, problems: list[Problem], *, temperature: float, group_size: int, max_new_tokens: int, out_dir: Path, log: Log = print
) -> dict:
    """Greedy and sampled accuracy of the start model, and the share of groups with reward variance."""
    model, tokenizer = load_model(checkpoint)
    started = time.time()
    greedy = rollout(model, tokenizer, problems, SamplingConfig(max_new_tokens=max_new_tokens, batch_size=16))
    sampled = rollout(
        model, tokenizer, problems,
        SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, samples_per_problem=group_size, batch_size=16, seed=0),
    )  # fmt: skip
    for trace in sampled:
        trace.group = trace.problem_id
    write_jsonl(out_dir / "greedy.traces.jsonl", greedy)
    write_jsonl(out_dir / "sampled.traces.jsonl", sampled)
    g, s = summarize(greedy), summarize(sampled)
    padding = sampled_padding(sampled, problems, tokenizer)
    figures = {
        "problems": len(problems),
        "greedy_accuracy": g["accuracy"],
        "sampled_accuracy": s["accuracy"],
        "temperature": temperature,
        "group_size": group_size,
        "groups_with_reward_variance": group_variance_fraction(sampled),
        "mean_tokens": s["mean_tokens"],
        **padding,
        "seconds": round(time.time() - started, 1),
    }
    log(
        f"start model: greedy {figures['greedy_accuracy']:.1%}, sampled (T={temperature}) {figures['sampled_accuracy']:.1%}, "
        f"groups with reward variance {figures['groups_with_reward_variance']:.0%} ({len(problems)} problems x {group_size})"
        + (f", sampled CoT tokens in irrelevant units {padding['irrelevant_share']:.0%}" if padding.get("irrelevant_share") is not None else "")
    )
    return figures


def sampled_padding(traces: list, problems: list[Problem], tokenizer) -> dict:
    """The share of the traces' labelled tokens in irrelevant units, in all and by padding kind
    (`dca.problems.gold.padding_kind`), by the auto reviewer (the oracle on synthetic problems);
    empty when no reviewer knows the problems."""
    reviewer = reviewer_for("auto", problems)
    if reviewer is None:
        return {}
    count = token_counter(tokenizer)
    reviews = review_traces([reviewer], traces, {p.id: p for p in problems})
    measures = trace_measures(traces, reviews, count)
    labelled = sum(m.labelled_tokens for m in measures)
    by_kind: dict[str, int] = {}
    for review in reviews:
        for step in review.steps if review.status == "ok" else []:
            if step.contribution == "irrelevant":
                kind = padding_kind(step.function)
                by_kind[kind] = by_kind.get(kind, 0) + sum(count(u.text) for u in review.units[step.first_unit : step.last_unit + 1])
    return {
        "irrelevant_share": round(sum(m.irrelevant_tokens for m in measures) / labelled, 4) if labelled else None,
        "irrelevant_share_by_kind": {k: round(v / labelled, 4) for k, v in sorted(by_kind.items())} if labelled else {},
        "reviewer": reviewer.name,
    }
