"""Commands that review traces and read reviews: `dca review`, `dca consensus`, `dca agreement`, `dca show`, `dca bench-reviewers`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..caveats import warn
from ..consensus import agreed_share, build_consensuses, check_rule, consensus_warnings
from ..domains import domain_of
from ..errors import UserError
from ..files import write_jsonl, write_text_atomic
from ..micro.vocabulary import is_micro_checkpoint
from ..model import SamplingConfig, cache_dir, resolve_model_path
from ..problems import SyntheticConfig, generate_problems, load_gsm8k
from ..records import Problem, Review, Trace, to_dict
from ..terminal import console
from ..train.config import WarmstartSettings
from ..train.micro import MICRO_PROBLEMS
from .common import _beside, _count, _log, _out_file, _quiet_libraries, _read_records, _write_text
from .estimate import add_review_arguments as add_estimate_review_arguments
from .estimate import review_estimate


def cmd_review(args: argparse.Namespace) -> int:
    from rich.console import Console  # start-up: rich and the review stack load only when this command runs
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ..review import ReviewCache, default_cache_path, load_reviewers
    from ..review.batch import load_review_items, review_items, summary

    if args.estimate:  # issue 22: the reviews' cost before any call (dca.cli.estimate)
        return review_estimate(args)
    if args.out is None:
        raise UserError("dca review needs --out FILE (or --estimate)")
    problems_beside = str(Path(args.traces).with_name("problems.jsonl"))  # load_review_items' default
    inputs = (args.traces, args.problems or problems_beside, args.reviewers, args.cache)
    out = _out_file(args.out, args, *inputs)
    summary_out = _out_file(args.summary_json, args, *inputs, flag="--summary-json") if args.summary_json else None
    if summary_out is not None and summary_out.resolve() == out.resolve():
        raise UserError("--summary-json and --out are the same file; give two paths")
    specs = load_reviewers(args.reviewers, only=args.reviewer)
    items = load_review_items(args.traces, args.problems, limit=args.limit)
    check_review_requirements(specs, items, where=args.traces)
    cache = None
    if not args.no_cache:
        cache_path = Path(args.cache) if args.cache else default_cache_path()
        try:
            cache = ReviewCache(cache_path)
        except Exception as e:  # sqlite3.Error, OSError: an unusable cache path is the user's to fix
            raise UserError(f"cannot open the review cache {cache_path}: {e}; pass --cache PATH or --no-cache") from e
    console = Console(stderr=True)
    with Progress(
        TextColumn("reviewing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        task = progress.add_task("reviews", total=len(items) * len(specs))
        reviews, stats = review_items(items, specs, cache=cache, on_review=lambda _: progress.advance(task))
    if cache is not None:
        cache.close()
    write_jsonl(out, reviews)
    figures = summary(stats, traces=len(items))
    if summary_out is not None:
        _write_text(summary_out, json.dumps(figures, indent=2) + "\n")
    _print_review_summary(figures)
    _log(f"wrote {len(reviews)} reviews to {out}")
    return 0


def check_review_requirements(specs: list, items: list, *, where: str) -> None:
    """Every reviewer supports the items' problem domains and has its model on this machine."""
    from ..review.registry import check_domains, check_local_models  # start-up: the review stack loads only when this command runs

    check_domains(specs, {domain_of(item.problem).name for item in items}, where=where)
    check_local_models(specs)


def _print_review_summary(figures: dict) -> None:
    from rich.markup import escape  # start-up: rich loads only when a table is printed
    from rich.table import Table

    table = Table(title="reviews")
    for column in ("reviewer", "reviews", "ok", "failed", "new calls", "cached calls", "retries", "tokens in", "tokens out", "cost $"):
        table.add_column(column, justify="left" if column == "reviewer" else "right")
    rows = [*figures["reviewers"].items(), ("total", figures["total"])]
    for name, r in rows:
        failed = str(r["failed"])
        if r["failed_by_reason"]:
            failed += " (" + ", ".join(f"{k} {v}" for k, v in r["failed_by_reason"].items()) + ")"
        table.add_row(
            escape(name), str(r["reviews"]), str(r["ok"]), failed, str(r["new_calls"]), str(r["cached_calls"]),
            str(r["retries"]), str(r["input_tokens"]), str(r["output_tokens"]), f"{r['cost_usd']:.4f}",
        )
    console(160).print(table)


def cmd_consensus(args: argparse.Namespace) -> int:
    try:
        check_rule(args.rule)
    except ValueError as e:
        raise UserError(str(e)) from e
    out = _out_file(args.out, args, args.reviews)
    reviews = _read_records(args.reviews, Review, "reviews")
    try:
        consensuses = build_consensuses(reviews, rule=args.rule)
    except ValueError as e:
        raise UserError(f"{args.reviews}: {e}") from e
    write_jsonl(out, consensuses)
    agreed = agreed_share(consensuses)
    disputed = sum(len(c.disputed_units) for c in consensuses)
    failed = sum(c.failed_reviews for c in consensuses)
    merged = sum(1 for c in consensuses if len(c.reviewers) >= 2)
    shown = f"{agreed:.1%} of the text agreed on average over the {merged} traces with 2+ usable reviews" if agreed is not None else "no trace had 2 usable reviews: nothing was agreed"
    _log(f"wrote {len(consensuses)} consensus records ({args.rule}) to {out}: {shown}, {disputed} disputed units, {failed} failed reviews left out")
    for message in consensus_warnings(consensuses):
        warn(message)
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from rich.console import Console  # start-up: rich and the agreement statistics load only when this command runs
    from rich.table import Table

    from ..agreement import agreement_report, format_report

    compare = None
    if args.compare is not None:
        names = [n.strip() for n in args.compare.split(",")]
        if len(names) != 2 or not all(names):
            raise UserError(f"--compare takes two reviewer names, A,B (got {args.compare!r})")
        compare = (names[0], names[1])
        if args.truth is None:
            raise UserError("--compare needs --truth: both reviewers are scored against it")
    traces_path = _beside(args.reviews, "traces.jsonl", args.traces)
    problems_path = _beside(args.reviews, "problems.jsonl", args.problems)
    out = _out_file(args.out or str(Path(args.reviews).with_suffix(".agreement.json")), args, args.reviews, traces_path, problems_path)
    reviews = _read_records(args.reviews, Review, "reviews")
    traces = _read_records(traces_path, Trace, "traces") if traces_path else None
    problems = _read_records(problems_path, Problem, "problems") if problems_path else None
    try:
        report = agreement_report(reviews, traces=traces, problems=problems, truth=args.truth, weighting=args.weighting, compare=compare, draws=args.draws)
    except ValueError as e:
        raise UserError(f"{args.reviews}: {e}") from e
    console = Console()
    for title, rows in format_report(report):
        table = Table(title=title)
        for n, header in enumerate(rows[0]):
            table.add_column(header, justify="left" if n == 0 else "right")
        for row in rows[1:]:
            table.add_row(*row)
        console.print(table)
    _write_text(out, json.dumps(report, indent=2) + "\n")
    for message in report["warnings"]:  # why figures are n/a (also in the JSON)
        warn(message)
    _log(f"wrote {out}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..report import collect_inputs, render_report  # start-up: the report page loads only when this command runs

    try:
        check_rule(args.rule)
    except ValueError as e:
        raise UserError(str(e)) from e
    from ..report import input_files

    out = _out_file(args.out, args, *args.paths, *input_files(args.paths))
    try:
        inputs = collect_inputs(args.paths)
        page = render_report(inputs, rule=args.rule, limit=args.limit, title=f"DCA traces: {' '.join(args.paths)}")
    except (OSError, ValueError) as e:
        raise UserError(str(e).splitlines()[0]) from e
    _write_text(out, page)
    _log(f"wrote {out} ({len(page) // 1024} KiB): open it in a browser")
    return 0


#: Reviewers `dca bench-reviewers` can name without a reviewers file.
BUILTIN = ("reference", "oracle")


PLANTED_SOURCES = ("gsm8k", "synthetic")


def _specs(args: argparse.Namespace):
    from ..review.config import ReviewerSpec, load_reviewers  # start-up: the review stack loads only when this command runs

    if args.reviewers:
        return load_reviewers(args.reviewers, only=args.reviewer)
    names = args.reviewer or list(BUILTIN)
    unknown = [n for n in names if n not in BUILTIN]
    if unknown:
        raise UserError(f"reviewer {unknown[0]!r} is not built in ({', '.join(BUILTIN)}); declare it in a --reviewers YAML file")
    return [ReviewerSpec(name=n, backend=n) for n in dict.fromkeys(names)]


def _items(args: argparse.Namespace):
    from ..review import bench  # start-up: the review stack loads only when this command runs

    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    planted = args.planted or ([] if args.processbench or args.mistakes else list(PLANTED_SOURCES))
    items = []
    for source in dict.fromkeys(planted):
        if source == "gsm8k":
            items += bench.planted_gsm8k(load_gsm8k(args.gsm8k, limit=args.limit), seed=args.seed)
        else:
            problems = generate_problems(args.limit, SyntheticConfig(min_operations=1, max_operations=4, seed=args.seed))
            items += bench.planted_synthetic(problems, seed=args.seed)
    for path in args.processbench:
        items += bench.read_processbench(path)
    return items


def _mistake_items(args: argparse.Namespace):
    """The real-mistake items of `--mistakes MODEL` and the counts of its rollout."""
    from ..review.mistakes import mistake_items, rollout_cached  # start-up: the review stack and the warm start load only when this command runs

    if args.max_new_tokens < 1 or args.temperature < 0:
        raise UserError("--max-new-tokens must be at least 1 and --temperature at least 0")
    settings = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed, "batch_size": 16}
    SamplingConfig(**settings)
    _quiet_libraries()
    if args.mistakes == "warmstart":
        from ..train.warmstart import warmstart

        model_path = str(warmstart("embedded", WarmstartSettings(), log=_log))
    else:
        model_path = resolve_model_path(args.mistakes)
    # A micro model reads only the micro vocabulary and was trained on the micro world's problems.
    world = MICRO_PROBLEMS if is_micro_checkpoint(model_path) else {}
    problems = generate_problems(args.limit, SyntheticConfig(seed=args.seed, **world))
    traces = rollout_cached(model_path, problems, settings, cache_dir() / "mistakes", log=_log)
    return mistake_items(problems, traces)


def cmd_bench_reviewers(args: argparse.Namespace) -> int:
    from rich.table import Table  # start-up: rich and the review stack load only when this command runs

    from ..review import ReviewCache, default_cache_path
    from ..review.bench import first_error, run_bench, write_processbench

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
        table.add_column(column, justify="left" if column in ("reviewer", "source") else "right", no_wrap=column in ("reviewer", "source"))

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

        report = {"figures": figures, "predictions": predictions} | ({"mistakes": counts} if counts is not None else {})
        write_text_atomic(out, json.dumps(report, indent=1) + "\n")
        _log(f"wrote figures and {len(predictions)} predictions to {out}")
    return 0


def add_parsers(sub) -> None:
    """The group's subcommands."""
    p = sub.add_parser("review", help="review a traces file with the reviewers of a YAML file (cached)")
    p.add_argument("--traces", required=True, help="traces JSON-lines (from `dca rollout` or a run directory)")
    p.add_argument("--reviewers", required=True, help="reviewers YAML (see dca/review/config.py)")
    p.add_argument("--out", default=None, help="reviews JSON-lines to write (required unless --estimate)")
    p.add_argument("--problems", default=None, help="problems JSON-lines (default: problems.jsonl beside --traces)")
    p.add_argument("--reviewer", action="append", default=None, metavar="NAME", help="use only this reviewer (repeatable)")
    p.add_argument("--limit", type=_count(1), default=None, help="review only the first N traces")
    p.add_argument("--cache", default=None, help="SQLite cache file (default: $DCA_CACHE_DIR/review-cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="call every reviewer again, store nothing")
    p.add_argument("--summary-json", default=None, metavar="PATH", help="also write the summary figures as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out and --summary-json files (never an input)")
    add_estimate_review_arguments(p)
    p.set_defaults(func=cmd_review)
    p = sub.add_parser("consensus", help="merge several reviewers' reviews of each trace into a consensus")
    p.add_argument("--reviews", required=True, help="a reviews JSON-lines file with several reviewers per trace")
    p.add_argument("--rule", default="majority", help="unanimous, majority or at-least-M (e.g. at-least-2)")
    p.add_argument("--out", required=True, help="consensus JSON-lines file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input)")
    p.set_defaults(func=cmd_consensus)
    p = sub.add_parser("agreement", help="agreement between reviewers and their quality against a truth")
    p.add_argument("--reviews", required=True, help="a reviews JSON-lines file with several reviewers per trace")
    p.add_argument("--truth", default=None, metavar="REVIEWER", help="the reviewer whose labels are the truth (e.g. oracle, reference)")
    p.add_argument("--traces", default=None, help="traces file for the by-outcome figures (default: traces.jsonl beside --reviews)")
    p.add_argument("--problems", default=None, help="problems file for the by-domain figures (default: problems.jsonl beside --reviews)")
    p.add_argument("--weighting", choices=("tokens", "units"), default="tokens", help="weight units by their tokens (words and punctuation) or count each once")
    p.add_argument("--compare", default=None, metavar="A,B", help="with --truth: reviewer B against reviewer A, paired on the traces both reviewed, with 95%% bootstrap intervals of B - A")
    p.add_argument("--draws", type=_count(100), default=2000, help="bootstrap draws for --compare")
    p.add_argument("--out", default=None, help="JSON file for all figures (default: <reviews>.agreement.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input)")
    p.set_defaults(func=cmd_agreement)
    p = sub.add_parser("show", help="write an HTML page to read traces with their reviews, consensus and credit")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_FILES", help="a run directory, or traces/reviews/consensus/credits/problems JSON-lines files")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--rule", default="majority", help="consensus rule where no consensus file is given")
    p.add_argument("--limit", type=_count(1), default=500, help="show at most this many traces")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input)")
    p.set_defaults(func=cmd_show)
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
