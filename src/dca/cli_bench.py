"""`dca bench-reviewers`: score reviewers on labelled first-error data (see `dca.review.bench`).

    dca bench-reviewers --planted gsm8k --planted synthetic --limit 200        # reference, oracle
    dca bench-reviewers --reviewers reviewers.yaml --reviewer gpt --processbench gsm8k.json

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
    p.add_argument("--limit", type=int, default=200, help="problems per planted source (default 200; each gives a correct and a planted item)")
    p.add_argument("--seed", type=int, default=0, help="seed of the planted errors (and the synthetic problems)")
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
    planted = args.planted or ([] if args.processbench else list(PLANTED_SOURCES))
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
    if not items:
        raise UserError("no items to score: give --planted or --processbench")
    return items


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
             "source": by_id[r.trace_id].source, "review": to_dict(r)}
            for r in reviews
        ]  # fmt: skip
        from .files import write_text_atomic  # here, not at the top: every command imports this module for its parser

        write_text_atomic(out, json.dumps({"figures": figures, "predictions": predictions}, indent=1) + "\n")
        _log(f"wrote figures and {len(predictions)} predictions to {out}")
    return 0
