"""The shared start checkpoint of an experiment, and what it measures before any arm trains.

Start models:

- ``embedded``, a checkpoint directory or a hub id: used as is;
- ``tiny``: `dca.model.build_tiny_model` (a random model: plumbing checks only);
- ``micro``: a Llama of a few million parameters built from `MicroSettings` with the embedded
  model's tokenizer and chat template (so prompts, answer checking, segmentation and credit
  alignment are the same as for SmolLM2), trained *from scratch* by the warm start on gold
  CoTs. Most of its parameters are the tied 49k-token embedding; the transformer body is small.

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

from ..files import publish_dir, scratch_dir
from ..model import build_tiny_model, load_model, load_tokenizer, resolve_model_path
from ..records import Problem
from ..files import write_jsonl
from .spec import ExperimentSpec, MicroSettings

Log = Callable[[str], None]


def build_micro_model(out_dir: str | Path, settings: MicroSettings) -> Path:
    """Save a randomly initialised Llama of `settings`' size with the embedded tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = load_tokenizer("embedded")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size or 4 * settings.hidden_size,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = Path(out_dir)
    with scratch_dir(out) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        publish_dir(scratch, out)
    return out


def parameter_count(path: str | Path) -> dict[str, int]:
    model, _ = load_model(str(path))
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return {"parameters": total, "embedding": embedding, "body": total - embedding}


def base_model(spec: ExperimentSpec, start_dir: Path) -> str:
    """The start model before the warm start (built under `start_dir` for tiny and micro)."""
    name = spec.start.model
    if name not in ("tiny", "micro"):
        return resolve_model_path(name)
    target = start_dir / f"{name}-base"
    if not (target / "config.json").exists():
        if name == "tiny":
            build_tiny_model(target)
        else:
            build_micro_model(target, spec.start.micro)
    return str(target)


def prepare_start(spec: ExperimentSpec, start_dir: Path, *, log: Log = print) -> tuple[str, dict]:
    """The start checkpoint's path and its record (``start/start.json``), made once per experiment."""
    from ..train.warmstart import warmstart

    record_file = start_dir / "start.json"
    if record_file.exists():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if Path(record["checkpoint"], "config.json").exists():
            return record["checkpoint"], record
    start_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    base = base_model(spec, start_dir)
    checkpoint = base
    if spec.start.warmstart is not None:
        checkpoint = str(warmstart(base, spec.start.warmstart, log=log))
    record = {
        "model": spec.start.model,
        "base": base,
        "checkpoint": checkpoint,
        "warmstart": spec.start.warmstart.model_dump(mode="json") if spec.start.warmstart else None,
        "warmstart_seconds": round(time.time() - started, 1),
        **parameter_count(checkpoint),
    }
    return checkpoint, record


def measure_start(
    checkpoint: str, problems: list[Problem], *, temperature: float, group_size: int, max_new_tokens: int, out_dir: Path, log: Log = print
) -> dict:
    """Greedy and sampled accuracy of the start model, and the share of groups with reward variance."""
    from ..model import SamplingConfig
    from ..rollout import rollout, summarize
    from ..train.run import group_variance_fraction

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
    figures = {
        "problems": len(problems),
        "greedy_accuracy": g["accuracy"],
        "sampled_accuracy": s["accuracy"],
        "temperature": temperature,
        "group_size": group_size,
        "groups_with_reward_variance": group_variance_fraction(sampled),
        "mean_tokens": s["mean_tokens"],
        "seconds": round(time.time() - started, 1),
    }
    log(
        f"start model: greedy {figures['greedy_accuracy']:.1%}, sampled (T={temperature}) {figures['sampled_accuracy']:.1%}, "
        f"groups with reward variance {figures['groups_with_reward_variance']:.0%} ({len(problems)} problems x {group_size})"
    )
    return figures
