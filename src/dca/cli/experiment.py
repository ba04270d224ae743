"""Commands that run experiments: `dca demo`, `dca experiment run`, `dca experiment report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import _Parser, _count, _log, _quiet_libraries


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import print_demo, run_demo  # start-up: the experiment runner loads only when this command runs

    _log(f"DCA demo -> {args.out}")
    _quiet_libraries()
    figures = run_demo(
        args.out, world=args.world, steps=args.steps, warmstart_steps=args.warmstart_steps, eval_problems=args.eval_problems, overwrite=args.overwrite, log=_log
    )
    print_demo(figures, Path(args.out))
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated integers, e.g. 0,1,2 (got {text!r})") from None


def cmd_experiment_run(args: argparse.Namespace) -> int:
    from ..experiment.report import build_report  # start-up: the experiment runner loads only when this command runs
    from ..experiment.runner import run_experiment
    from ..experiment.spec import load_spec

    spec = load_spec(args.spec)
    only = [a for a in args.only.split(",") if a.strip()] if args.only else None
    seeds = _int_list(args.seeds, "--seeds") if args.seeds else None
    _quiet_libraries()
    record = run_experiment(spec, args.out, only=only, seeds=seeds, log=_log)
    _log(f"experiment {record['status']}: {args.out} ({record['wall_seconds']} s in all)")
    if not args.no_report:
        build_report(args.out)
        _log(f"report: {Path(args.out) / 'report' / 'report.md'} and report.html")
    return 0


def cmd_experiment_report(args: argparse.Namespace) -> int:
    from ..experiment.report import build_report  # start-up: the report loads only when this command runs

    figures = build_report(args.dir, args.out)
    for line in figures["mde"]:
        _log(line.replace("**", ""))
    if figures["missing"]:
        _log(f"not finished (left out): {', '.join(figures['missing'])}")
    _log(f"wrote {Path(args.out or Path(args.dir) / 'report') / 'report.md'} and report.html")
    return 0


def add_parsers(sub) -> None:
    """The group's subcommands."""
    p = sub.add_parser("demo", help="plain GRPO beside DCA-GRPO in the micro world (or on the embedded SmolLM2), on the CPU")
    p.add_argument("--world", choices=("micro", "smollm2"), default="micro", help="micro: the micro world (docs/micro-world.md); smollm2: the embedded SmolLM2-135M")
    p.add_argument("--steps", type=_count(1), default=None, help="GRPO steps of each arm (default: micro 60, smollm2 3)")
    p.add_argument("--warmstart-steps", type=_count(1), default=None, help="smollm2: SFT steps (4 gold CoTs each) of the cached warm start (default 24)")
    p.add_argument("--eval-problems", type=_count(1), default=None, help="held-out problems evaluated before and after (default: micro 200, smollm2 16)")
    p.add_argument("--out", default="runs/demo", help="the demo's experiment directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("experiment", help="run an experiment spec (arms x seeds from one start checkpoint) and report it")
    experiment = p.add_subparsers(dest="experiment_command", required=True, parser_class=_Parser)
    q = experiment.add_parser("run", help="run or resume every arm x seed of a spec (finished runs are skipped)")
    q.add_argument("spec", help="experiment spec YAML (see experiments/)")
    q.add_argument("--out", required=True, help="experiment directory (created; an existing one of the same spec is resumed)")
    q.add_argument("--only", default=None, metavar="ARM[,ARM]", help="run only these arms")
    q.add_argument("--seeds", default=None, metavar="S[,S]", help="run only these seeds of the spec")
    q.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    q.set_defaults(func=cmd_experiment_run)
    q = experiment.add_parser("report", help="write report.md and a self-contained report.html for an experiment directory")
    q.add_argument("dir", help="the --out directory of `dca experiment run`")
    q.add_argument("--out", default=None, metavar="DIR", help="where the report goes (default: DIR/report)")
    q.set_defaults(func=cmd_experiment_report)
