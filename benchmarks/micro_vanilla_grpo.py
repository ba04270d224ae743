"""Plain TRL `GRPOTrainer` (no DCA code: no reviewer, no per-token credit) on the micro start:
does GRPO itself raise the training reward at a given learning rate?

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/micro_vanilla_grpo.py --learning-rate 5e-5 --steps 45

Steps of 8 prompts x 8 completions of the micro world's problems at T = 1.0, the completion
limit of the padding-free condition (235), TRL's `dapo` loss without a KL term (DCA's
defaults). Prints the mean training reward over each third of the steps and the mean
completion length every 10 steps. Separates a property of GRPO in this world from one of DCA's
credit path (docs/micro-world.md, "Learning rate").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from datasets import Dataset
from transformers import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from dca.domains import chat_messages
from dca.model import load_model, trainer_device_arguments
from dca.problems import SyntheticConfig, generate_problems
from dca.train.grpo_trainer import domain_reward
from dca.train.micro import MICRO_PROBLEMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, tokenizer = load_model("micro")
    torch.set_num_threads(1)
    problems = generate_problems(8 * args.steps, SyntheticConfig(seed=1, **MICRO_PROBLEMS))
    dataset = Dataset.from_list([{"prompt": chat_messages(p), "problem_id": p.id} for p in problems])
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="vanilla-grpo-"), max_steps=args.steps, per_device_train_batch_size=64,
        num_generations=8, max_completion_length=235, learning_rate=args.learning_rate, temperature=1.0,
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, seed=args.seed, loss_type="dapo",
        beta=0.0, shuffle_dataset=False, **trainer_device_arguments(),
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, reward_funcs=[domain_reward({p.id: p for p in problems})], args=config, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    rows = [row for row in trainer.state.log_history if "reward" in row]
    third = max(1, len(rows) // 3)
    thirds = [statistics.mean(row["reward"] for row in rows[i * third : (i + 1) * third]) for i in range(3)]
    lengths = [round(row["completions/mean_length"]) for row in rows[::10]]
    print(f"learning rate {args.learning_rate:g}, {len(rows)} steps of 64: mean reward by thirds {', '.join(f'{r:.3f}' for r in thirds)}; completion length every 10 steps {lengths}")


if __name__ == "__main__":
    main()
