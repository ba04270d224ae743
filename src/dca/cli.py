"""The `dca` console command.

    dca problems   write synthetic problems or a GSM8K split to JSON-lines
    dca rollout    sample traces from a model for a problems file
    dca warmstart  SFT a model on gold CoTs of synthetic problems (cached)
    dca train      DCA-GRPO from a YAML config
    dca demo       the whole loop on the embedded model, on the CPU

A user mistake prints one line (``dca: error: ...``) and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import UserError


def _log(message: str) -> None:
    print(message, flush=True)


def _quiet_libraries() -> None:
    """Keep the terminal for DCA's own progress lines: no per-library progress bars."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()


def _out_file(path: str) -> Path:
    """An output file path whose directory exists and is writable."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file path")
    if not parent.is_dir():
        raise UserError(f"directory {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write to {parent}; choose a writable --out")
    return out


# ---------------------------------------------------------------------------------------------
# Subcommands


def cmd_problems(args: argparse.Namespace) -> int:
    from .problems import SyntheticConfig, generate_problems
    from .records import write_jsonl
    from .train.config import ProblemsSettings
    from .train.run import load_problems

    out = _out_file(args.out)
    if args.gsm8k:
        problems = load_problems(ProblemsSettings(gsm8k=args.gsm8k, limit=args.limit))
    else:
        try:
            config = SyntheticConfig(
                min_operations=args.min_operations,
                max_operations=args.max_operations,
                distractors=tuple(args.distractors),
                max_value=args.max_value,
                seed=args.seed,
            )
        except ValueError as e:
            raise UserError(str(e)) from e
        problems = generate_problems(args.synthetic, config)
    n = write_jsonl(out, problems)
    _log(f"wrote {n} problems to {out}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from .model import load_model
    from .records import write_jsonl
    from .rollout import SamplingConfig, rollout, summarize
    from .train.run import read_problems_file

    problems = read_problems_file(args.problems)[: args.limit]
    out = _out_file(args.out)
    try:
        sampling = SamplingConfig(
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            samples_per_problem=args.samples,
            batch_size=args.batch_size,
            seed=args.seed,
        )
    except ValueError as e:
        raise UserError(str(e)) from e
    _quiet_libraries()
    model, tokenizer = load_model(args.model)
    total = len(problems) * sampling.samples_per_problem
    done = 0
    started = time.time()

    def progress(n: int) -> None:
        nonlocal done
        done += n
        _log(f"  {done}/{total} completions ({time.time() - started:.0f} s)")

    traces = rollout(model, tokenizer, problems, sampling, model_name=args.model, on_batch=progress)
    write_jsonl(out, traces)
    s = summarize(traces)
    _log(f"wrote {len(traces)} traces to {out}: accuracy {s['accuracy']:.1%}, format failures {s['format_failures']:.1%}, mean {s['mean_tokens']:.0f} tokens")
    return 0


def cmd_warmstart(args: argparse.Namespace) -> int:
    from .train.config import SyntheticSettings, WarmstartSettings
    from .train.warmstart import warmstart

    settings = WarmstartSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        irrelevant_rate=args.irrelevant_rate,
        problems=SyntheticSettings(count=args.steps * args.batch_size, seed=args.seed),
    )
    _quiet_libraries()
    path = warmstart(args.model, settings, log=_log)
    _log(f"warm-started checkpoint: {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.config import load_train_config
    from .train.run import run_training

    config = load_train_config(args.config)
    _quiet_libraries()
    summary, run = run_training(config, args.out, overwrite=args.overwrite, log=_log)
    _print_summary(summary, run.path)
    return 0


def demo_config(steps: int, warmstart_steps: int, eval_problems: int = 32):
    """The demo: embedded model, warm start, easy problems with distractors, oracle, conserve."""
    from .train.config import (
        CreditSettings,
        GRPOSettings,
        ProblemsSettings,
        SyntheticSettings,
        TrainConfig,
        WarmstartSettings,
    )

    easy = dict(min_operations=1, max_operations=2, distractors=(1, 2), max_value=20)
    return TrainConfig(
        model="embedded",
        warmstart=WarmstartSettings(steps=warmstart_steps, problems=SyntheticSettings(count=warmstart_steps * 8, seed=1000, **easy)),
        reviewer="oracle",
        credit=CreditSettings(policy="conserve"),
        problems=ProblemsSettings(synthetic=SyntheticSettings(count=64, seed=1, **easy)),
        eval_problems=ProblemsSettings(synthetic=SyntheticSettings(count=eval_problems, seed=2, **easy)),
        grpo=GRPOSettings(steps=steps, num_generations=8, prompts_per_step=1, max_completion_length=96, learning_rate=5e-6),
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .train.run import run_training

    if min(args.steps, args.warmstart_steps, args.eval_problems) < 1:
        raise UserError("--steps, --warmstart-steps and --eval-problems must be at least 1")
    _log(f"DCA demo -> {args.out}")
    config = demo_config(args.steps, args.warmstart_steps, args.eval_problems)
    _quiet_libraries()
    summary, run = run_training(config, args.out, overwrite=args.overwrite, log=_log)
    _print_summary(summary, run.path)
    return 0


def _print_summary(summary: dict, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {path}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("eval_before", "eval_after"):
        if key in summary:
            table.add_row(f"{key.replace('_', ' ')}: accuracy", f"{summary[key]['accuracy']:.1%}")
    train = summary["train"]
    table.add_row("training completions", str(train["traces"]))
    table.add_row("training accuracy", f"{train['accuracy']:.1%}")
    table.add_row("groups with reward variance", f"{train['groups_with_reward_variance']:.0%}")
    table.add_row("tokens with non-zero advantage", f"{train['nonzero_advantage_tokens']} / {train['tokens']}")
    table.add_row("tokens credited", f"{train['credited_fraction']:.0%}")
    table.add_row("failed reviews / uniform fallbacks", f"{train['reviews_failed']} / {train['fallbacks']}")
    table.add_row("conserve: max |sum - uniform sum|", f"{train['conserve_max_abs_error']:.2e}")
    table.add_row("seconds", str(summary["seconds"]))
    Console().print(table)


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too; keep it short)
        self.exit(2, f"dca: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dca", description="Deliberative Credit Assignment for chain-of-thought training.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("problems", help="write synthetic problems or a GSM8K split to JSON-lines")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="N", help="generate N synthetic problems")
    source.add_argument("--gsm8k", metavar="SPLIT_OR_PATH", help="'train', 'test' or a GSM8K JSON-lines file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-operations", type=int, default=1)
    p.add_argument("--max-operations", type=int, default=3)
    p.add_argument("--distractors", type=int, nargs=2, default=(0, 2), metavar=("MIN", "MAX"))
    p.add_argument("--max-value", type=int, default=50)
    p.add_argument("--limit", type=int, default=None, help="keep only the first N (GSM8K)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_problems)

    p = sub.add_parser("rollout", help="sample traces from a model for a problems file")
    p.add_argument("--problems", required=True)
    p.add_argument("--model", default="embedded", help="'embedded', a checkpoint directory or a hub id")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=int, default=1, help="completions per problem")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("warmstart", help="SFT a model on gold CoTs of synthetic problems (cached)")
    p.add_argument("--model", default="embedded")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--irrelevant-rate", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1000)
    p.set_defaults(func=cmd_warmstart)

    p = sub.add_parser("train", help="DCA-GRPO training from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="warm start + DCA-GRPO on the embedded model, on the CPU")
    p.add_argument("--steps", type=int, default=4, help="GRPO steps")
    p.add_argument("--warmstart-steps", type=int, default=20, help="SFT steps of the (cached) warm start")
    p.add_argument("--eval-problems", type=int, default=32, help="held-out problems evaluated before and after")
    p.add_argument("--out", default="runs/demo", help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"dca: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dca: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
