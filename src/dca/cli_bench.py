"""`dca bench-reviewers`: score reviewers on labelled first-error data (see `dca.review.bench`).

    dca bench-reviewers --planted gsm8k --planted synthetic --limit 200        # reference, oracle
    dca bench-reviewers --reviewers reviewers.yaml --reviewer gpt --processbench gsm8k.json
    dca bench-reviewers --mistakes warmstart --limit 300     # a model's own mistakes (dca.review.mistakes)

Prints one table row per reviewer and source (accuracy on erroneous items, on correct items,
F1, failed reviews) and, with ``--out``, writes the figures and every prediction as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import UserError

#: Reviewers `dca bench-reviewers` can name without a reviewers file.
BUILTIN = ("reference", "oracle")
PLANTED_SOURCES = ("gsm8k", "synthetic")


def add_parser(sub) -> None:
    p = sub.add_parser("bench-reviewers", help="score reviewers at finding the first wrong step (planted errors, ProcessBench files)")
    p.add_argument("--reviewers", default=None, help="reviewers YAML (default: the built-in reference and oracle reviewers)")
    p.add_argument("--reviewer", action="append", default=None, metavar="NAME", help="use only this reviewer (repeatable)")
    p.add_argument("--planted", action="append", choices=PLANTED_SOURCES, default=None, help="planted-error items from GSM8K references or synthetic gold CoTs (repeatable; default both unless --processbench)")
    p.add_argument("--gsm8k", default="test", help="GSM8K split or JSON-lines path for --planted gsm8k (default: test)")
    p.add_argument("--limit", type=int, default=200, help="problems per planted source (default 200; each gives a correct and a planted item), and for --mistakes")
    p.add_argument("--seed", type=int, default=0, help="seed of the planted errors (and the synthetic problems)")
    p.add_argument("--mistakes", default=None, metavar="MODEL", help="real mistakes: roll MODEL out on --limit synthetic problems (once; cached) and score the reviewers on its wrong traces. MODEL: 'warmstart' (the embedded model's cached warm start), 'embedded', a checkpoint directory or a hub id")
    p.add_argument("--max-new-tokens", type=int, default=160, help="--mistakes: tokens per completion (default 160)")
    p.add_argument("--temperature", type=float, default=0.0, help="--mistakes: sampling temperature (default 0: greedy)")
    p.add_argument("--processbench", action="append", default=[], metavar="FILE", help="a ProcessBench-format file: JSON list or lines of {problem, steps, label} (repeatable)")
    p.add_argument("--write-items", default=None, metavar="PATH", help="also write the items in ProcessBench format (JSON lines)")
    p.add_argument("--out", default=None, help="JSON file for the figures and every prediction")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out and --write-items files (never an input)")
    p.add_argument("--cache", default=None, help="SQLite cache file for LLM reviewers (default: $DCA_CACHE_DIR/review-cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="call every LLM reviewer again, store nothing")
    p.set_defaults(func=cmd_bench_reviewers)


def _specs(args: argparse.Namespace):
    from .review.config import ReviewerSpec, load_reviewers

    if args.reviewers:
        return load_reviewers(args.reviewers, only=args.reviewer)
    names = args.reviewer or list(BUILTIN)
    unknown = [n for n in names if n not in BUILTIN]
    if unknown:
        raise UserError(f"reviewer {unknown[0]!r} is not built in ({', '.join(BUILTIN)}); declare it in a --reviewers YAML file")
    return [ReviewerSpec(name=n, backend=n) for n in dict.fromkeys(names)]


def _items(args: argparse.Namespace):
    from .review import bench

    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    planted = args.planted or ([] if args.processbench or args.mistakes else list(PLANTED_SOURCES))
    items = []
    for source in dict.fromkeys(planted):
        if source == "gsm8k":
            from .problems import load_gsm8k

            items += bench.planted_gsm8k(load_gsm8k(args.gsm8k, limit=args.limit), seed=args.seed)
        else:
            from .problems import SyntheticConfig, generate_problems

            problems = generate_problems(args.limit, SyntheticConfig(min_operations=1, max_operations=4, seed=args.seed))
            items += bench.planted_synthetic(problems, seed=args.seed)
    for path in args.processbench:
        items += bench.read_processbench(path)
    return items


def _mistake_items(args: argparse.Namespace):
    """The real-mistake items of `--mistakes MODEL` and the counts of its rollout."""
    from .cli import _log, _quiet_libraries
    from .model import cache_dir, resolve_model_path
    from .problems import SyntheticConfig, generate_problems
    from .review.mistakes import mistake_items, rollout_cached
    from .model import SamplingConfig

    if args.max_new_tokens < 1 or args.temperature < 0:
        raise UserError("--max-new-tokens must be at least 1 and --temperature at least 0")
    settings = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed, "batch_size": 16}
    SamplingConfig(**settings)
    _quiet_libraries()
    if args.mistakes == "warmstart":
        from .train.config import WarmstartSettings
        from .train.warmstart import warmstart

        model_path = str(warmstart("embedded", WarmstartSettings(), log=_log))
    else:
        model_path = resolve_model_path(args.mistakes)
    problems = generate_problems(args.limit, SyntheticConfig(seed=args.seed))
    traces = rollout_cached(model_path, problems, settings, cache_dir() / "mistakes", log=_log)
    return mistake_items(problems, traces)


def cmd_bench_reviewers(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .cli import _log, _out_file
    from .terminal import console
    from .records import to_dict
    from .review import ReviewCache, default_cache_path
    from .review.bench import first_error, run_bench, write_processbench

    inputs = [args.reviewers, *args.processbench, args.gsm8k, args.cache]
    out = _out_file(args.out, args, *inputs) if args.out else None
    items_out = _out_file(args.write_items, args, *inputs, flag="--write-items") if args.write_items else None
    if out is not None and items_out is not None and out.resolve() == items_out.resolve():
        raise UserError("--out and --write-items are the same file; give two paths")
    specs = _specs(args)
    items = _items(args)
    counts = None
    if args.mistakes:
        mistakes, counts = _mistake_items(args)
        items += mistakes
        wrong = sum(item.label >= 0 for item in mistakes)
        _log(f"mistakes of {args.mistakes}: {counts['traces']} traces, {counts['solved']} solved, {counts['wrong']} wrong "
             f"({wrong} labelled, {counts['unlabelled']} without a first wrong step), {counts['format_failures']} without an answer")  # fmt: skip
        if wrong == 0:
            _log(f"{args.mistakes} made no mistakes to score on {args.limit} problems: 0 erroneous items")
    if not items:
        if counts is not None:  # a model without mistakes (or answers) is an outcome, not bad input
            if out is not None:
                out.write_text(json.dumps({"figures": {}, "mistakes": counts, "predictions": []}, indent=1) + "\n", encoding="utf-8")
            return 0
        raise UserError("no items to score: give --planted, --processbench or --mistakes")
    if items_out is not None:
        write_processbench(items, items_out)
        _log(f"wrote {len(items)} items to {items_out}")
    cache = None
    if not args.no_cache and any(s.backend not in BUILTIN for s in specs):
        cache_path = Path(args.cache) if args.cache else default_cache_path()
        try:
            cache = ReviewCache(cache_path)
        except Exception as e:  # sqlite3.Error, OSError
            raise UserError(f"cannot open the review cache {cache_path}: {e}; pass --cache PATH or --no-cache") from e
    try:
        figures, reviews = run_bench(items, specs, cache=cache)
    finally:
        if cache is not None:
            cache.close()

    table = Table(title="first-error detection (ProcessBench metric)")
    for column in ("reviewer", "source", "erroneous", "acc. erroneous", "correct", "acc. correct", "F1", "failed reviews"):
        table.add_column(column, justify="left" if column in ("reviewer", "source") else "right")

    def show(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for reviewer, sources in figures.items():
        for source, f in sorted(sources.items(), key=lambda kv: (kv[0] == "all", kv[0])):
            table.add_row(
                reviewer, source, str(f["erroneous"]), show(f["accuracy_erroneous"]), str(f["correct"]),
                show(f["accuracy_correct"]), show(f["f1"]), str(f["failed_reviews"]),
            )  # fmt: skip
    console(140).print(table)
    if out is not None:
        by_id = {item.id: item for item in items}
        predictions = [
            {"item": r.trace_id, "reviewer": r.reviewer, "label": by_id[r.trace_id].label, "predicted": first_error(r),
             "source": by_id[r.trace_id].source, "kind": by_id[r.trace_id].kind, "review": to_dict(r)}
            for r in reviews
        ]  # fmt: skip
        from .files import write_text_atomic  # here, not at the top: every command imports this module for its parser

        report = {"figures": figures, "predictions": predictions} | ({"mistakes": counts} if counts is not None else {})
        write_text_atomic(out, json.dumps(report, indent=1) + "\n")
        _log(f"wrote figures and {len(predictions)} predictions to {out}")
    return 0
