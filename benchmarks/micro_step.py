"""GRPO steps of 64 completions in the micro world beside the same steps on SmolLM2-135M.

    PYTHONPATH=src .venv/bin/python benchmarks/micro_step.py
    PYTHONPATH=src .venv/bin/python benchmarks/micro_step.py --micro-steps 6 --smollm-steps 2

One run, both worlds, the same code path: `DCAGRPOTrainer` (generation, the oracle review,
``conserve`` credit, the update) on 8 prompts x 8 completions of the same 1-2-operation
synthetic problems, the same completion limit and learning rate. ``micro`` is the shipped
warm-started micro model (`dca.micro`); ``embedded`` is SmolLM2-135M-Instruct as it ships
(no warm start). Each step's wall and process CPU seconds are recorded by a callback; the
first step of each world is a warm-up and is not counted (``--smollm-warmup 0`` times
SmolLM2's first step, first-call costs included, which favours micro a little). Prints completions per wall second
and per CPU second for each world, the mean completion length, and
``ratio=`` (micro / SmolLM2 completions per wall second; goal >= 100). On a shared machine
wall time swings with the load beside it: the CPU-second figures are the steadier ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback

from dca.train.micro import MICRO_PROBLEMS
from dca.model import load_model, trainer_device_arguments
from dca.problems import SyntheticConfig, generate_problems
from dca.domains import chat_messages
from dca.review import OracleReviewer
from dca.train.grpo_config import DCAGRPOConfig
from dca.train.grpo_trainer import DCAGRPOTrainer, domain_reward

COMPLETIONS_PER_STEP = 64


class StepClock(TrainerCallback):
    """Wall and process CPU seconds of each optimizer step (generation and review included)."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append({"wall": time.perf_counter() - self._wall, "cpu": time.process_time() - self._cpu})


def run_world(name: str, steps: int, completion_tokens: int, seed: int, tmp: str, threads: int, warmup: int = 1, batch: int = COMPLETIONS_PER_STEP) -> dict:
    model, tokenizer = load_model(name)
    torch.set_num_threads(threads)  # the same for both worlds (loading a micro model sets 1)
    problems = generate_problems(batch // 8 * (steps + warmup), SyntheticConfig(seed=seed, **MICRO_PROBLEMS))
    dataset = Dataset.from_list([{"prompt": chat_messages(p), "problem_id": p.id} for p in problems])
    args = DCAGRPOConfig(
        output_dir=f"{tmp}/{name}", max_steps=steps + warmup, per_device_train_batch_size=batch, num_generations=8,
        max_completion_length=completion_tokens, learning_rate=1e-5, temperature=1.0, logging_steps=1, save_strategy="no",
        report_to=[], disable_tqdm=True, seed=seed, credit={"policy": "conserve"}, **trainer_device_arguments(),
    )  # fmt: skip
    clock = StepClock()
    trainer = DCAGRPOTrainer(
        model=model, reward_funcs=[domain_reward({p.id: p for p in problems})], args=args, train_dataset=dataset,
        processing_class=tokenizer, reviewer=OracleReviewer(), problems={p.id: p for p in problems},
        callbacks=[clock],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    timed = clock.steps[warmup:]
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history if "completions/mean_length" in row][warmup:]
    wall = statistics.median(s["wall"] for s in timed)
    cpu = statistics.median(s["cpu"] for s in timed)
    figures = {
        "world": name,
        "warmup_steps": warmup,
        "parameters": sum(p.numel() for p in model.parameters()),
        "timed_steps": len(timed),
        "step_wall_seconds": round(wall, 3),
        "step_cpu_seconds": round(cpu, 3),
        "completions_per_step": batch,
        "completions_per_second": round(batch / wall, 2),
        "completions_per_cpu_second": round(batch / cpu, 2),
        "mean_completion_tokens": round(statistics.mean(lengths), 1) if lengths else None,
    }
    print(
        f"{name}: {figures['parameters'] / 1e6:.2f} M parameters, step of {batch} completions "
        f"{wall:.2f} s wall / {cpu:.2f} s CPU -> {figures['completions_per_second']:.1f} completions/s "
        f"({figures['completions_per_cpu_second']:.1f} per CPU second), mean {figures['mean_completion_tokens']} completion tokens",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro-steps", type=int, default=5, help="timed micro steps (after one warm-up step)")
    parser.add_argument("--smollm-steps", type=int, default=1, help="timed SmolLM2 steps (after --smollm-warmup steps)")
    parser.add_argument("--smollm-batch", type=int, default=COMPLETIONS_PER_STEP, help="SmolLM2's completions per step (64 needs ~20 GB: its 49k-token logits; 16 fits 23 GB, per-completion rates compare, a smaller batch favours micro a little)")
    parser.add_argument("--smollm-warmup", type=int, default=1, help="untimed SmolLM2 steps first (0: its first step is timed, first-call costs included)")
    parser.add_argument("--completion-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both worlds (1: no OpenMP spinning on a shared machine)")
    parser.add_argument("--micro-model", default="micro", help="the micro checkpoint (default: the micro start model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        figures = [
            run_world(args.micro_model, args.micro_steps, args.completion_tokens, args.seed, tmp, args.threads),
            run_world("embedded", args.smollm_steps, args.completion_tokens, args.seed, tmp, args.threads, warmup=args.smollm_warmup, batch=args.smollm_batch),
        ]
    micro, smollm = figures
    ratio = micro["completions_per_second"] / smollm["completions_per_second"]
    cpu_ratio = micro["completions_per_cpu_second"] / smollm["completions_per_cpu_second"]
    print(f"cpu_ratio={cpu_ratio:.1f}")
    print(f"ratio={ratio:.1f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"worlds": figures, "ratio": round(ratio, 2), "cpu_ratio": round(cpu_ratio, 2), "load_average": list(__import__("os").getloadavg())}, f, indent=2)


if __name__ == "__main__":
    main()
