"""How long a `micro` start model takes, from scratch on the CPU, to solve 1-2-operation problems.

    .venv/bin/python benchmarks/micro_testbed.py --hidden 128 --layers 4 --steps 600 --eval-every 100

Builds the micro Llama (`dca.experiment.testbed.build_micro_model`), trains it on gold CoTs with
30 % irrelevant steps (the warm start's data, `dca.train.warmstart.gold_dataset_rows`) and every
`--eval-every` steps prints its greedy accuracy on held-out 1-2-operation problems, its sampled
accuracy at T=0.7 and the share of groups of 8 with reward variance, with the wall time so far.
Each line is also appended as JSON to `--out`, so a run can be read while it goes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-problems", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--out", default="micro_testbed.jsonl")
    args = parser.parse_args()

    import torch
    from transformers import TrainerCallback

    from dca.experiment.spec import MicroSettings
    from dca.experiment.testbed import build_micro_model, parameter_count
    from dca.problems import SyntheticConfig, generate_problems
    from dca.model import SamplingConfig
    from dca.rollout import rollout, summarize
    from dca.train.config import SyntheticSettings, WarmstartSettings
    from dca.train.run import group_variance_fraction
    from dca.train.sft import SFTSettings, sft_trainer
    from dca.train.warmstart import gold_dataset_rows

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="micro-"))
    base = build_micro_model(work / "base", MicroSettings(hidden_size=args.hidden, layers=args.layers))
    print(f"micro model: {parameter_count(base)}", flush=True)
    easy = dict(min_operations=1, max_operations=2, distractors=(1, 2), max_value=20)
    settings = WarmstartSettings(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, irrelevant_rate=0.3,
        problems=SyntheticSettings(count=args.steps * args.batch_size, seed=1000, **easy),
    )  # fmt: skip
    held_out = generate_problems(args.eval_problems, SyntheticConfig(seed=7000, **easy))
    out = Path(args.out)
    started = time.time()
    paused = 0.0

    class _Eval(TrainerCallback):
        def on_step_end(self, a, state, control, model=None, processing_class=None, **kwargs):
            nonlocal paused
            if state.global_step % args.eval_every and state.global_step != args.steps:
                return
            t0 = time.time()
            tokenizer = processing_class
            model.config.use_cache = True
            greedy = rollout(model, tokenizer, held_out, SamplingConfig(max_new_tokens=args.max_new_tokens, batch_size=32))
            sampled = rollout(
                model, tokenizer, held_out[:16],
                SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.7, samples_per_problem=8, batch_size=32),
            )  # fmt: skip
            model.train()
            eval_seconds = time.time() - t0
            paused += eval_seconds
            row = {
                "step": state.global_step,
                "train_seconds": round(time.time() - started - paused, 1),
                "eval_seconds": round(eval_seconds, 1),
                "loss": state.log_history[-1].get("loss") if state.log_history else None,
                "greedy_accuracy": summarize(greedy)["accuracy"],
                "sampled_accuracy": summarize(sampled)["accuracy"],
                "groups_with_reward_variance": group_variance_fraction(sampled),
                "format_failures": summarize(greedy)["format_failures"],
                "hidden": args.hidden,
                "layers": args.layers,
            }
            print(json.dumps(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")

    sft = SFTSettings(max_steps=settings.steps, batch_size=settings.batch_size, learning_rate=settings.learning_rate, seed=1000)
    trainer = sft_trainer(gold_dataset_rows(settings), str(base), work / "trainer", sft, callbacks=[_Eval()])
    trainer.train()
    print(f"sample completion:\n{greedy_example(trainer, held_out[0], args.max_new_tokens)}")


def greedy_example(trainer, problem, max_new_tokens: int) -> str:
    from dca.model import SamplingConfig
    from dca.rollout import rollout

    (trace,) = rollout(trainer.model, trainer.processing_class, [problem], SamplingConfig(max_new_tokens=max_new_tokens))
    return f"Q: {problem.question}\nA: {trace.completion}\n(gold {problem.answer}, {trace.outcome})"


if __name__ == "__main__":
    main()
