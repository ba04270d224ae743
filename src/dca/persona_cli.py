"""`dca persona-train`: the command-line side of `dca.train.persona` (kept out of `dca.cli`).

    dca persona-train --labels reviews.jsonl --traces traces.jsonl --problems problems.jsonl \\
        --personas strict,lenient --model embedded --out runs/personas --max-steps 30
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import UserError


def _personas(value: str) -> list:
    """Built-in names separated by commas, or a YAML file with a ``personas:`` list."""
    from .review.persona import resolve_personas

    if value.endswith((".yaml", ".yml")):
        from .files import read_yaml

        path = Path(value)
        data = read_yaml(path, what="personas")
        entries = data.get("personas") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise UserError(f"{path} must hold a 'personas:' list")
        return resolve_personas(entries)
    return resolve_personas([name.strip() for name in value.split(",") if name.strip()])


def _labels(path: str) -> list:
    """Review or Consensus records, told apart by the first record's fields."""
    from .files import read_records
    from .records import Consensus, Review

    if not Path(path).is_file():
        raise UserError(f"labels file {path} does not exist; write reviews with `dca review` or a consensus with `dca consensus`")
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        kind = Consensus if "rule" in json.loads(first or "{}") else Review
    except json.JSONDecodeError:
        raise UserError(f"{path}:1: not a JSON record") from None
    labels = read_records(path, kind, what="labels")
    if not labels:
        raise UserError(f"labels file {path} holds no records")
    return labels


def cmd_persona_train(args: argparse.Namespace) -> int:
    from .cli import _log, _quiet_libraries
    from .files import prepare_output_dir, read_records
    from .records import Problem, Trace
    from .train.persona import PersonaTrainSettings, run_persona_train
    from .train.sft import SFTSettings

    personas = _personas(args.personas)
    targets = {}
    for entry in args.target or []:
        persona, _, reviewer = entry.partition("=")
        if not reviewer or persona not in {p.name for p in personas}:
            raise UserError(f"--target {entry!r}: write PERSONA=REVIEWER with a declared persona ({', '.join(p.name for p in personas)})")
        targets[persona] = reviewer
    try:
        settings = SFTSettings(
            max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate, max_length=args.max_length,
            lora=args.lora, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, seed=args.seed,
        )  # fmt: skip
        persona_settings = PersonaTrainSettings(held_out=args.held_out, targets=targets, measure=not args.no_measure, max_measure=args.max_measure, replay=args.replay)
    except ValueError as e:
        raise UserError(str(e)) from e
    if args.max_measure is not None and args.max_measure < 1:
        raise UserError("--max-measure must be at least 1")
    labels = _labels(args.labels)
    traces = read_records(args.traces, Trace, what="traces")
    problems = read_records(args.problems, Problem, what="problems")
    out = prepare_output_dir(args.out, overwrite=args.overwrite, marker="persona_train.json", kind="a persona checkpoint")
    _quiet_libraries()
    try:
        summary = run_persona_train(labels, traces, problems, personas, args.model, out, settings, persona_settings, log=_log)
    except ValueError as e:
        raise UserError(str(e)) from e
    for phase in ("before", "after"):
        for name, f in summary.get(phase, {}).items():
            _log(f"{phase:6s} {name}: alpha {_fmt(f['alpha'])}  useful F1 {_fmt(f['useful_f1'])}  error F1 {_fmt(f['error_f1'])}  "
                 f"first-error F1 {_fmt(f['first_error_f1'])}  failed {f['failed']}/{f['traces']}")  # fmt: skip
    policy = summary.get("policy", {})
    if "after" in policy:
        _log(f"policy (no persona token): accuracy {policy['before']['accuracy']:.1%} -> {policy['after']['accuracy']:.1%} "
             f"on {policy['after']['problems']} held-out problem(s)")  # fmt: skip
    _log(f"persona checkpoint: {out} ({summary['rows']} persona rows + {summary['policy_rows']} policy rows, {settings.max_steps} steps; figures in persona_train.json)")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def add_parsers(sub) -> None:
    p = sub.add_parser("persona-train", help="SFT reviewer persona tokens of a model toward external reviews; agreement before/after")
    p.add_argument("--labels", required=True, help="external reviews (`dca review`) or consensus (`dca consensus`) JSON-lines")
    p.add_argument("--traces", required=True, help="the traces they review")
    p.add_argument("--problems", required=True, help="the traces' problems")
    p.add_argument("--personas", default="strict", help="comma-separated built-in personas (strict, lenient, causal) or a YAML file with a personas: list")
    p.add_argument("--target", action="append", metavar="PERSONA=REVIEWER", help="train a persona toward one reviewer of --labels (default: their majority consensus)")
    p.add_argument("--model", default="embedded", help="'embedded', a checkpoint directory or a hub id (the policy)")
    p.add_argument("--out", required=True, help="directory for the checkpoint with the persona tokens")
    p.add_argument("--held-out", type=float, default=0.25, help="share of traces kept out of training to measure agreement")
    p.add_argument("--max-measure", type=int, default=None, help="review at most this many held-out traces per measurement")
    p.add_argument("--no-measure", action="store_true", help="skip the before/after agreement measurement")
    p.add_argument("--replay", type=float, default=0.0, help="policy rows per persona row: the model's own greedy solutions (no persona token), meant to keep the policy solving (default 0: none)")
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=1024, help="longest prompt + completion in tokens")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (PEFT), merged into the saved checkpoint")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier persona checkpoint in --out")
    p.set_defaults(func=cmd_persona_train)
