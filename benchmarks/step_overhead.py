"""Time a DCA-GRPO step against a plain TRL GRPO step on the same model, batch and seed.

    .venv/bin/python benchmarks/step_overhead.py                 # embedded SmolLM2-135M
    .venv/bin/python benchmarks/step_overhead.py --model tiny    # a tiny random model (fast)

Both trainers get the same model weights, the same prompts, the same seed; DCA adds
segmentation, the oracle reviewer and per-token credit (`conserve`). Runs alternate
(plain, DCA, plain, DCA, ...) so that a noisy machine slows both alike; the last line is the
median of the per-pair ratios DCA / plain, e.g. ``ratio=1.03``. Goal: <= 1.05 on the CPU.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
from datasets import Dataset
from transformers import PrinterCallback
from trl import GRPOTrainer

from dca.model import build_tiny_model, load_model, trainer_device_arguments
from dca.problems import SyntheticConfig, generate_problems
from dca.domains import chat_messages
from dca.review import OracleReviewer
from dca.train.grpo_config import DCAGRPOConfig
from dca.train.grpo_trainer import DCAGRPOTrainer, outcome_reward


def make_args(out: str, steps: int, completion_tokens: int, seed: int) -> DCAGRPOConfig:
    # plain GRPO ignores the credit settings; the DCA trainer reads them
    return DCAGRPOConfig(
        credit={"policy": "conserve"},
        output_dir=out,
        max_steps=steps,
        per_device_train_batch_size=8,
        num_generations=8,
        max_completion_length=completion_tokens,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=seed,
        **trainer_device_arguments(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", default="embedded", help="'embedded', 'tiny' or a checkpoint directory")
    parser.add_argument("--steps", type=int, default=1, help="optimizer steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs (plain, DCA)")
    parser.add_argument("--completion-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        name = str(build_tiny_model(f"{tmp}/tiny")) if args.model == "tiny" else args.model
        base_model, tokenizer = load_model(name)
        problems = generate_problems(16, SyntheticConfig(min_operations=1, max_operations=2, distractors=(1, 2), max_value=20, seed=args.seed))
        dataset = Dataset.from_list([{"prompt": chat_messages(p), "answer": p.answer, "problem_id": p.id} for p in problems])

        def timed(kind: str) -> float:
            model = copy.deepcopy(base_model)
            common = dict(
                model=model,
                reward_funcs=[outcome_reward],
                args=make_args(f"{tmp}/{kind}", args.steps, args.completion_tokens, args.seed),
                train_dataset=dataset,
                processing_class=tokenizer,
            )
            if kind == "plain":
                trainer = GRPOTrainer(**common)
            else:
                trainer = DCAGRPOTrainer(**common, reviewer=OracleReviewer(), problems={p.id: p for p in problems})
            trainer.remove_callback(PrinterCallback)  # keep the output to the timing lines
            started = time.perf_counter()
            trainer.train()
            return time.perf_counter() - started

        timed("plain")  # warm-up: first-call costs (kernels, tokenizer caches) hit neither side
        ratios = []
        for r in range(args.repeats):
            plain = timed("plain")
            dca = timed("dca")
            ratios.append(dca / plain)
            print(f"pair {r + 1}: plain {plain:.2f} s  dca {dca:.2f} s  ratio {dca / plain:.3f}", flush=True)
    print(f"ratio={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
