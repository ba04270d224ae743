"""The `dca` console command.

    dca problems   write problems of any domain (synthetic, GSM8K, logic, puzzles, ...) to JSON-lines
    dca domains    the registered problem domains and what each supports
    dca generate   novel problems with known structure from an LLM (checked, deduplicated, contamination report)
    dca rollout    sample traces from a model for a problems file
    dca warmstart  SFT a model on gold CoTs of synthetic problems (cached)
    dca train      DCA-GRPO from a YAML config
    dca demo       the whole loop in the micro world (--world smollm2: on the embedded model), on the CPU
    dca review     review a traces file with the reviewers of a YAML file (cached, fault-tolerant)
    dca consensus  merge several reviewers' reviews of each trace into a consensus
    dca agreement  agreement between reviewers (alpha, kappa, pairs) and quality against a truth
    dca bench-reviewers  score reviewers at finding the first wrong step (planted errors, ProcessBench files)
    dca show       an HTML page to read traces with their reviews, consensus and credit
    dca edit       cut what reviewers found useless out of solved traces (or the rft / random-drop baselines)
    dca sft        fine-tune a model on an edit set (TRL SFTTrainer, completion-only loss, optional LoRA)
    dca persona-train  SFT reviewer persona tokens of the policy toward external reviews (`dca.persona_cli`)
    dca eval       accuracy, tokens per insight, faithfulness probes and performative-reasoning figures per problem set
    dca experiment run the arms x seeds of an experiment spec (resumable), and report them with intervals

A user mistake prints one line (``dca: error: ...``) and exits with code 2; an output the
environment refused (a full disk, a read-only filesystem) prints one line naming the path and
the cause and exits with code 3 (docs/hostile-environments.md).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from .cli_estimate import add_review_arguments as add_estimate_review_arguments
from .cli_estimate import add_train_arguments as add_estimate_train_arguments
from .cli_estimate import review_estimate, train_estimate
from .errors import Terminated, UserError


def _log(message: str) -> None:
    print(message, flush=True)


def _quiet_libraries() -> None:
    """Keep the terminal for DCA's own progress lines: no per-library progress bars."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()


def _out_file(path: str, args: argparse.Namespace | None = None, *inputs: str | None, flag: str = "--out") -> Path:
    """An output file that may be written: refused when it exists (without --overwrite) or is
    one of the command's inputs."""
    from .files import check_output_file

    return check_output_file(path, overwrite=getattr(args, "overwrite", False), inputs=inputs, flag=flag)


def _write_text(path: Path, text: str) -> None:
    from .files import write_text_atomic

    write_text_atomic(path, text)


def _count(minimum: int):
    """An argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def _number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None):
    """An argparse type: a finite number in [minimum, maximum] (or > `above`)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be greater than {above:g}, got {value:g}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


# ---------------------------------------------------------------------------------------------
# Subcommands


def cmd_problems(args: argparse.Namespace) -> int:
    from .domains.sources import ProblemsSettings, SyntheticSettings, load_problems
    from .files import write_jsonl

    out = _out_file(args.out, args, args.gsm8k if args.gsm8k and Path(args.gsm8k).exists() else None, args.file)
    if args.domain:
        settings = ProblemsSettings.model_construct(
            file=None, gsm8k=None, synthetic=None, domain=_domain_settings(args), limit=args.limit
        )
    elif args.gsm8k:
        settings = ProblemsSettings(gsm8k=args.gsm8k, limit=args.limit)
    else:
        # Unvalidated here on purpose: SyntheticConfig checks the knobs and names the fix.
        synthetic = SyntheticSettings.model_construct(
            count=args.synthetic,
            seed=args.seed,
            min_operations=args.min_operations,
            max_operations=args.max_operations,
            distractors=tuple(args.distractors),
            max_value=args.max_value,
        )
        settings = ProblemsSettings.model_construct(file=None, gsm8k=None, synthetic=synthetic, limit=args.limit)
    problems = load_problems(settings)
    if not problems:
        raise UserError(f"{args.gsm8k or 'the synthetic settings'} gave no problems; nothing written")
    n = write_jsonl(out, problems)
    _log(f"wrote {n} problems to {out}")
    return 0


def _domain_settings(args: argparse.Namespace):
    """`dca problems --domain`: a DomainSettings from the flags (arithmetic's knob flags
    become its generator options unless --option gives them)."""
    from pydantic import ValidationError

    from .domains import get_domain
    from .domains.sources import DomainSettings

    domain = get_domain(args.domain)
    options: dict = {}
    if domain.name == "arithmetic":
        options = dict(min_operations=args.min_operations, max_operations=args.max_operations, distractors=tuple(args.distractors), max_value=args.max_value)
    for item in args.option or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--option {item!r}: write KEY=VALUE (e.g. --option max_depth=3)")
        options[key.strip()] = _option_value(value.strip())
    if args.count is not None and args.count < 1:
        raise UserError("--count must be at least 1")
    if domain.generate is None and args.file is None and domain.load is None:
        raise UserError(f"domain {domain.name!r} has no problem source")
    try:
        return DomainSettings(name=domain.name, count=args.count, seed=args.seed, file=args.file, options=options)
    except ValidationError as e:
        raise UserError(f"--domain {domain.name}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from e


def _option_value(text: str):
    """An --option value as YAML reads it (numbers, booleans, [lists]), else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def cmd_domains(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .domains import DOMAINS
    from .terminal import console

    table = Table(title="registered domains")
    for column in ("domain", "source", "answer", "reward", "gold CoT", "oracle", "reviewer reference", "options / data"):
        table.add_column(column)
    for domain in DOMAINS.values():
        s = domain.supports()
        source = " + ".join(k for k in ("generator", "loader") if s[k])
        cells = (
            domain.name, source, domain.answer_format, domain.reward, "yes" if s["gold_cot"] else "-", "yes" if s["oracle"] else "-",
            domain.reviewer_reference or "-", domain.options or domain.load_hint or "-",
        )  # fmt: skip
        table.add_row(*(escape(c) for c in cells))
    console(200).print(table)
    for domain in DOMAINS.values():
        _log(f"  {domain.name}: {domain.description}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import run_generate
    from .review import default_cache_path

    out = _out_file(args.out, args, args.reviewers, *(args.against or []))
    _out_file(f"{out}.report.json", args, args.reviewers, *(args.against or []), flag="report file")
    result = run_generate(
        reviewers=args.reviewers, generator=args.generator, domain=args.domain, count=args.count, out=out, seed=args.seed,
        threshold=args.threshold, against=args.against or [], gsm8k=not args.no_gsm8k,
        cache_path=None if args.no_cache else default_cache_path(), log=_log,
    )  # fmt: skip
    r = result.report
    reasons = ", ".join(f"{k} {v}" for k, v in r["rejected_by_reason"].items() if v) or "none"
    llm = r["llm"]
    _log(f"accepted {r['accepted']} of {r['requested']} {r['domain']} problems (rejected: {reasons}); "
         f"{llm.get('answered_calls', 0)} new calls, {llm.get('cached_calls', 0)} cached, ${llm.get('cost_usd', 0):.4f}")  # fmt: skip
    _log(f"wrote {len(result.problems)} problems to {out} and the contamination report to {out}.report.json")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from .model import load_model
    from .files import write_jsonl
    from .model import SamplingConfig
    from .rollout import rollout, summarize
    from .files import read_problems_file

    from .rollout import check_micro_problems
    from .model import resolve_model_path

    out = _out_file(args.out, args, args.problems)
    problems = read_problems_file(args.problems)[: args.limit]
    # A wrong model, or problems a micro model cannot read, fail before any model is loaded.
    check_micro_problems(resolve_model_path(args.model), problems)
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
    from .domains.sources import SyntheticSettings
    from .train.config import WarmstartSettings
    from .train.warmstart import warmstart

    from .model import resolve_model_path

    try:
        settings = WarmstartSettings(
            steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            irrelevant_rate=args.irrelevant_rate,
            problems=SyntheticSettings(count=args.steps * args.batch_size, seed=args.seed),
        )
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise UserError(f"warm start settings: {str(e).splitlines()[0]}") from e
    resolve_model_path(args.model)
    _quiet_libraries()
    path = warmstart(args.model, settings, log=_log)
    _log(f"warm-started checkpoint: {path}")
    import yaml

    from .model import portable_model_name

    recipe = yaml.safe_dump({"model": portable_model_name(args.model), "warmstart": settings.model_dump(mode="json")}, sort_keys=False, default_flow_style=None)
    _log(f"in a run config, name it model: {portable_model_name(str(path))} (this machine), or by its recipe (any machine):\n{recipe.rstrip()}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .files import check_output_dir
    from .train.config import load_train_config

    if args.estimate:  # issue 22: the reviews' cost before the run (dca.cli_estimate)
        return train_estimate(args)
    if args.out is None:
        raise UserError("dca train needs --out DIR (or --estimate)")
    if args.spec is not None:
        raise UserError("--spec is for --estimate; run an experiment spec with `dca experiment run`")
    if args.resume:
        if args.overwrite:
            raise UserError("--resume continues the run in --out; --overwrite would delete it (give one of them)")
        saved = Path(args.out) / "config.yaml"
        if args.config is not None:
            raise UserError(f"--resume reads the run's own config ({saved}); leave out --config")
        if not saved.is_file():
            raise UserError(f"--out {args.out} holds no config.yaml; it is not a DCA run that can be resumed")
        config = load_train_config(saved)
    elif args.config is None:
        raise UserError("give --config run.yaml (or --resume to continue the run in --out)")
    else:
        from .train.preflight import failed_before_first_step

        config = load_train_config(args.config)
        # Checked again, with the config's own inputs, and locked by run_training; this early
        # check refuses a wrong --out before the training libraries are imported. A run that
        # failed before its first step holds nothing to keep: run_training replaces it.
        rerun = args.overwrite or failed_before_first_step(args.out) is not None
        check_output_dir(args.out, overwrite=rerun, marker="run.json", kind="a DCA run", inputs=[args.config])
    from .train.run import run_training

    _quiet_libraries()
    summary, run = run_training(config, args.out, overwrite=args.overwrite, resume=args.resume, log=_log)
    if run.writer:
        _print_summary(summary, run.path, policy=config.credit.policy)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .files import write_jsonl
    from .review import ReviewCache, default_cache_path, load_reviewers
    from .review.batch import load_review_items, review_items, summary

    if args.estimate:  # issue 22: the reviews' cost before any call (dca.cli_estimate)
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
    from .domains import domain_of
    from .review.registry import check_domains, check_local_models

    check_domains(specs, {domain_of(item.problem).name for item in items}, where=where)
    check_local_models(specs)


def _print_review_summary(figures: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .terminal import console

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


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import print_demo, run_demo

    _log(f"DCA demo -> {args.out}")
    _quiet_libraries()
    figures = run_demo(
        args.out, world=args.world, steps=args.steps, warmstart_steps=args.warmstart_steps, eval_problems=args.eval_problems, overwrite=args.overwrite, log=_log
    )
    print_demo(figures, Path(args.out))
    return 0


def _print_summary(summary: dict, path: Path, *, policy: str) -> None:
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
    if policy == "conserve":  # rows only for the policy the run used
        table.add_row("conserve: max |sum - uniform sum|", f"{train['conserve_max_abs_error']:.2e}")
    table.add_row("bytes written", f"{summary['bytes_written'] / 1e6:,.1f} MB")
    if summary.get("warnings"):
        table.add_row("warnings (printed above; in summary.json)", str(len(summary["warnings"])))
    table.add_row("seconds", str(summary["seconds"]))
    Console().print(table)


def _read_records(path: str, cls, what: str) -> list:
    from .files import read_records

    return read_records(path, cls, what=what)


def cmd_consensus(args: argparse.Namespace) -> int:
    from .caveats import warn
    from .consensus import agreed_share, build_consensuses, check_rule, consensus_warnings
    from .files import write_jsonl
    from .records import Review

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


def _beside(path: str, name: str, given: str | None) -> str | None:
    """`given`, else the file `name` next to `path` when it exists (a run directory's layout)."""
    if given is not None:
        return given
    candidate = Path(path).parent / name
    return str(candidate) if candidate.is_file() else None


def cmd_agreement(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from .agreement import agreement_report, format_report
    from .caveats import warn
    from .records import Problem, Review, Trace

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
    from .consensus import check_rule
    from .report import collect_inputs, render_report

    try:
        check_rule(args.rule)
    except ValueError as e:
        raise UserError(str(e)) from e
    from .report import input_files

    out = _out_file(args.out, args, *args.paths, *input_files(args.paths))
    try:
        inputs = collect_inputs(args.paths)
        page = render_report(inputs, rule=args.rule, limit=args.limit, title=f"DCA traces: {' '.join(args.paths)}")
    except (OSError, ValueError) as e:
        raise UserError(str(e).splitlines()[0]) from e
    _write_text(out, page)
    _log(f"wrote {out} ({len(page) // 1024} KiB): open it in a browser")
    return 0


def _edit_labels(args: argparse.Namespace) -> dict:
    """Labels by trace id: a consensus file, or a reviews file with one review per trace."""
    from .records import Consensus, Review

    if args.consensus:
        consensuses = _read_records(args.consensus, Consensus, "consensus")
        return {c.trace_id: c for c in consensuses}
    reviews = _read_records(args.reviews, Review, "reviews")
    if args.reviewer:
        reviews = [r for r in reviews if r.reviewer == args.reviewer]
        if not reviews:
            raise UserError(f"{args.reviews} holds no review by {args.reviewer!r}")
    labels: dict = {}
    for review in reviews:
        if review.trace_id in labels:
            raise UserError(
                f"{args.reviews} holds several reviews of trace {review.trace_id}; merge them with "
                "`dca consensus` and pass --consensus, or pick one with --reviewer NAME"
            )
        labels[review.trace_id] = review
    return labels


def _token_counter(name: str):
    """A function counting a text's tokens with the named tokenizer ('words': words and marks)."""
    from .measures import token_counter, word_token_count

    if name == "words":
        return word_token_count
    from .model import load_tokenizer

    _quiet_libraries()
    tokenizer = load_tokenizer(name)
    return token_counter(tokenizer)


def _print_edit_figures(figures: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    def show(value) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("traces / trained on", f"{figures['traces']} / {figures['trained_on']}"),
        ("edited / unchanged / skipped", f"{figures['edited']} / {figures['unchanged']} / {figures['skipped']}"),
        ("tokens per trace before", show(figures["tokens_per_trace_before"])),
        ("tokens per trace after", show(figures["tokens_per_trace_after"])),
        ("fraction of units dropped", show(figures["fraction_units_dropped"])),
        ("bridges (LLM fallbacks to template)", f"{figures['bridges']} ({figures['bridge_fallbacks']})"),
        ("refused drops (steps a kept step needs)", f"{figures['refused_drops']} in {figures['traces_with_refused_drops']} traces"),
        ("edits refused for changing the answer", str(figures["answer_changes_refused"])),
        ("tokens per insight before", show(figures["tokens_per_insight_before"])),
        ("tokens per insight after", show(figures["tokens_per_insight_after"])),
    ]
    for reason, n in figures["skipped_by_reason"].items():
        rows.append((f"skipped: {reason}", str(n)))
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def cmd_edit(args: argparse.Namespace) -> int:
    import json

    from .edit import EditConfig, LLMBridgeWriter, edit_figures, edit_traces
    from .records import Problem, Trace
    from .files import write_jsonl

    if bool(args.consensus) == bool(args.reviews):
        raise UserError("give the labels with exactly one of --consensus FILE or --reviews FILE")
    try:
        config = EditConfig(arm=args.baseline or "edit", mode=args.mode, drop=tuple(args.drop), max_bridge_chars=args.max_bridge_chars, seed=args.seed)
    except ValueError as e:
        raise UserError(str(e)) from e
    if config.mode == "bridge-llm" and config.arm != "rft" and not args.bridge_reviewers:
        raise UserError("--mode bridge-llm needs --bridge-reviewers R.yaml (and --bridge-reviewer NAME when it declares several)")
    problems_beside = _beside(args.traces, "problems.jsonl", args.problems)
    inputs = (args.traces, args.consensus, args.reviews, args.problems, problems_beside, args.bridge_reviewers)
    out = _out_file(args.out, args, *inputs)
    figures_out = _out_file(str(out.with_suffix(".figures.json")), args, *inputs, flag="figures file")
    traces = _read_records(args.traces, Trace, "traces")
    problems_path = _beside(args.traces, "problems.jsonl", args.problems)
    if problems_path is None:
        raise UserError(f"no problems.jsonl beside {args.traces}; pass --problems FILE")
    problems = {p.id: p for p in _read_records(problems_path, Problem, "problems")}
    labels = _edit_labels(args)
    count_tokens = _token_counter(args.tokenizer)

    writer = None
    if config.mode == "bridge-llm" and config.arm != "rft":
        from .review import ReviewCache, default_cache_path, load_reviewers

        specs = load_reviewers(args.bridge_reviewers, only=[args.bridge_reviewer] if args.bridge_reviewer else None)
        if len(specs) > 1:
            raise UserError(f"{args.bridge_reviewers} declares {len(specs)} reviewers; choose one with --bridge-reviewer NAME")
        try:
            writer = LLMBridgeWriter(specs[0], cache=None if args.no_cache else ReviewCache(default_cache_path()))
        except ValueError as e:
            raise UserError(str(e)) from e
    try:
        edits = edit_traces(traces, problems, labels, config, count_tokens=count_tokens, bridge_writer=writer)
    finally:
        if writer is not None:
            writer.close()
    write_jsonl(out, edits)
    figures = edit_figures(edits) | {"traces_file": args.traces, "labels_file": args.consensus or args.reviews, "tokenizer": args.tokenizer}
    if writer is not None:
        figures["bridge_calls"] = writer.stats
    _write_text(figures_out, json.dumps(figures, indent=2) + "\n")
    _print_edit_figures(figures, f"edit set {out} ({config.arm}, {figures['mode']}; tokens: {args.tokenizer})")
    _log(f"wrote {len(edits)} edits to {out} and the figures to {figures_out}")
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from .records import Edit
    from .train.sft import SFTSettings, run_sft

    try:
        settings = SFTSettings(
            max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate, max_length=args.max_length,
            lora=args.lora, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, seed=args.seed,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from e
    from .files import check_output_dir

    inputs = [args.edits] + ([args.model] if Path(args.model).exists() else [])
    out = check_output_dir(args.out, overwrite=args.overwrite, marker="sft.json", kind="a DCA sft checkpoint", inputs=inputs)
    edits = _read_records(args.edits, Edit, "edits")
    if not any(e.status != "skipped" for e in edits):
        raise UserError(f"{args.edits} holds no trained-on edit (every trace was skipped); edit solved traces first")
    from .model import resolve_model_path

    resolve_model_path(args.model)  # before the training libraries load
    _quiet_libraries()
    summary = run_sft(edits, args.model, out, settings, edits_path=args.edits, log=_log)
    last = summary["losses"][-1]["loss"] if summary["losses"] else float("nan")
    _log(f"sft checkpoint: {out} ({summary['rows']} completions, {settings.max_steps} steps, last loss {last:.3f})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .files import check_output_dir

    # The output directory is checked again (and locked) by run_eval; this early check refuses
    # a wrong --out before the model libraries are imported.
    check_output_dir(args.out, overwrite=args.overwrite, marker="eval.json", kind="a DCA evaluation", inputs=[args.model])
    from .model import resolve_model_path

    resolve_model_path(args.model)
    from .continuation import ContinuationSettings
    from .evaluate import EvalConfig, print_table, run_eval
    from .model import SamplingConfig

    counterfactual = {"samples": args.cf_samples, "threshold": args.cf_threshold, "mode": args.cf_mode, "max_new_tokens": args.max_new_tokens, "seed": args.seed}
    try:
        config = EvalConfig(
            model=args.model,
            sets=[s for s in args.sets.split(",") if s.strip()],
            probes=[p for p in args.probes.split(",") if p.strip()],
            reviewer=args.reviewer,
            sampling=SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, samples_per_problem=args.samples, batch_size=args.batch_size, seed=args.seed),
            continuation=ContinuationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed),
            counterfactual=counterfactual,
            judge=args.judge,
            judge_reviewers=args.judge_reviewers,
            probe_sets=[n.strip() for n in args.probe_sets.split(",") if n.strip()] if args.probe_sets is not None else None,
            probe_limit=args.probe_limit,
        )
    except ValueError as e:
        raise UserError(str(e)) from e
    _quiet_libraries()
    report = run_eval(config, args.out, overwrite=args.overwrite, log=_log)
    print_table(report)
    _log(f"wrote {args.out}/eval.json, the plots and per-set traces, reviews and probes ({len(report['failures'])} failed items)")
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated integers, e.g. 0,1,2 (got {text!r})") from None


def cmd_experiment_run(args: argparse.Namespace) -> int:
    from .experiment.report import build_report
    from .experiment.runner import run_experiment
    from .experiment.spec import load_spec

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
    from .experiment.report import build_report

    figures = build_report(args.dir, args.out)
    for line in figures["mde"]:
        _log(line.replace("**", ""))
    if figures["missing"]:
        _log(f"not finished (left out): {', '.join(figures['missing'])}")
    _log(f"wrote {Path(args.out or Path(args.dir) / 'report') / 'report.md'} and report.html")
    return 0


# ---------------------------------------------------------------------------------------------
# Parser


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's default in --help, options without help text included."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        return bool(action.option_strings) and default is not None and default is not False and default != argparse.SUPPRESS and default != []

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if self._shows_default(action) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse prints usage too; keep it short)
        self.exit(2, f"dca: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="dca", description="Deliberative Credit Assignment for chain-of-thought training.")
    parser.add_argument("--version", action="version", version=f"dca {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("problems", help="write problems of any domain (synthetic, GSM8K, logic, ...) to JSON-lines")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=_count(1), metavar="N", help="generate N synthetic problems")
    source.add_argument("--gsm8k", metavar="SPLIT_OR_PATH", help="'train', 'test' or a GSM8K JSON-lines file")
    source.add_argument("--domain", metavar="NAME", help="a registered domain (see `dca domains`): generated with --count, or loaded with --file")
    p.add_argument("--count", type=_count(1), default=None, help="--domain: how many problems to generate (or the most to load)")
    p.add_argument("--file", default=None, help="--domain: the data file (or split) its loader reads")
    p.add_argument("--option", action="append", default=None, metavar="KEY=VALUE", help="--domain: a generator option (repeatable; see `dca domains`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-operations", type=_count(1), default=1)
    p.add_argument("--max-operations", type=_count(1), default=3)
    p.add_argument("--distractors", type=_count(0), nargs=2, default=(0, 2), metavar=("MIN", "MAX"))
    p.add_argument("--max-value", type=_count(1), default=50)
    p.add_argument("--limit", type=_count(1), default=None, help="keep only the first N")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input)")
    p.set_defaults(func=cmd_problems)

    p = sub.add_parser("domains", help="list the registered problem domains and what each supports")
    p.set_defaults(func=cmd_domains)

    p = sub.add_parser("generate", help="novel problems with known structure from an LLM, checked, deduplicated against GSM8K")
    p.add_argument("--reviewers", required=True, help="reviewers YAML that declares the generator model")
    p.add_argument("--generator", required=True, metavar="NAME", help="the reviewer (an LLM backend) that writes problems")
    p.add_argument("--domain", default="arithmetic", choices=("arithmetic", "logic"))
    p.add_argument("--count", type=_count(1), default=20, help="problems to ask for")
    p.add_argument("--seed", type=int, default=0, help="seeds the requests' topics and sizes")
    p.add_argument("--threshold", type=float, default=90.0, help="rapidfuzz ratio (0-100) at or above which a question is a near-duplicate")
    p.add_argument("--against", action="append", default=None, metavar="PROBLEMS.jsonl", help="an earlier generated set to deduplicate against (repeatable)")
    p.add_argument("--no-gsm8k", action="store_true", help="do not compare against GSM8K train and test")
    p.add_argument("--no-cache", action="store_true", help="do not use the LLM cache")
    p.add_argument("--out", required=True, help="problems JSON-lines to write (report: <out>.report.json)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out and report files (never an input)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("rollout", help="sample traces from a model for a problems file")
    p.add_argument("--problems", required=True)
    p.add_argument("--model", default="embedded", help="'embedded', a checkpoint directory or a hub id")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=_count(1), default=1, help="completions per problem")
    p.add_argument("--temperature", type=_number(0.0), default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", type=_count(1), default=128)
    p.add_argument("--batch-size", type=_count(1), default=16)
    p.add_argument("--limit", type=_count(1), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input)")
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("warmstart", help="SFT a model on gold CoTs of synthetic problems (cached)")
    p.add_argument("--model", default="embedded")
    p.add_argument("--steps", type=_count(1), default=20)
    p.add_argument("--batch-size", type=_count(1), default=8)
    p.add_argument("--learning-rate", type=_number(above=0.0, maximum=1.0), default=2e-4)
    p.add_argument("--irrelevant-rate", type=_number(0.0, 1.0), default=0.3, help="share of gold CoTs given an irrelevant step, in [0, 1]")
    p.add_argument("--seed", type=int, default=1000)
    p.set_defaults(func=cmd_warmstart)

    p = sub.add_parser("train", help="DCA-GRPO training from a YAML config")
    p.add_argument("--config", help="run YAML (not with --resume: the run's own config.yaml is used)")
    p.add_argument("--out", default=None, help="run directory (required unless --estimate)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out from its last checkpoint (trl.save_steps)")
    add_estimate_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="plain GRPO beside DCA-GRPO in the micro world (or on the embedded SmolLM2), on the CPU")
    p.add_argument("--world", choices=("micro", "smollm2"), default="micro", help="micro: the micro world (docs/micro-world.md); smollm2: the embedded SmolLM2-135M")
    p.add_argument("--steps", type=_count(1), default=None, help="GRPO steps of each arm (default: micro 60, smollm2 3)")
    p.add_argument("--warmstart-steps", type=_count(1), default=None, help="smollm2: SFT steps (4 gold CoTs each) of the cached warm start (default 24)")
    p.add_argument("--eval-problems", type=_count(1), default=None, help="held-out problems evaluated before and after (default: micro 200, smollm2 16)")
    p.add_argument("--out", default="runs/demo", help="the demo's experiment directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    p.set_defaults(func=cmd_demo)

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

    from .cli_bench import add_parser as add_bench_reviewers_parser

    add_bench_reviewers_parser(sub)

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

    p = sub.add_parser("edit", help="cut what reviewers found useless out of solved traces (edit set for `dca sft`)")
    p.add_argument("--traces", required=True, help="traces JSON-lines (only solved traces are edited; the rest are counted)")
    p.add_argument("--consensus", default=None, help="consensus JSON-lines (from `dca consensus`)")
    p.add_argument("--reviews", default=None, help="reviews JSON-lines with one review per trace (or use --reviewer)")
    p.add_argument("--reviewer", default=None, metavar="NAME", help="with --reviews: use only this reviewer's reviews")
    p.add_argument("--problems", default=None, help="problems JSON-lines (default: problems.jsonl beside --traces)")
    p.add_argument("--mode", default="bridge-template", choices=("drop", "bridge-template", "bridge-llm"), help="how the kept steps are joined")
    p.add_argument("--baseline", default=None, choices=("rft", "random-drop"), help="instead of the reviewer-guided edit: the unedited solved traces (rft) or a random drop of as many units")
    p.add_argument("--drop", nargs="+", default=["irrelevant", "failed_attempt"], metavar="CONTRIBUTION", help="contributions whose steps are dropped")
    p.add_argument("--bridge-reviewers", default=None, metavar="YAML", help="bridge-llm: the reviewers file that declares the LLM")
    p.add_argument("--bridge-reviewer", default=None, metavar="NAME", help="bridge-llm: which reviewer of that file writes bridges")
    p.add_argument("--max-bridge-chars", type=_count(1), default=160, help="longest accepted LLM bridge")
    p.add_argument("--no-cache", action="store_true", help="bridge-llm: do not use the review cache")
    p.add_argument("--tokenizer", default="embedded", help="tokenizer for the token figures: 'embedded', a checkpoint, a hub id, or 'words'")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-drop baseline")
    p.add_argument("--out", required=True, help="edits JSON-lines to write (figures go to <out>.figures.json)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out and figures files (never an input)")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("sft", help="fine-tune a model on an edit set (TRL SFTTrainer, completion-only loss)")
    p.add_argument("--edits", required=True, help="edits JSON-lines (from `dca edit`)")
    p.add_argument("--model", default="embedded", help="'embedded', a checkpoint directory or a hub id")
    p.add_argument("--out", required=True, help="directory for the fine-tuned checkpoint")
    p.add_argument("--max-steps", type=_count(1), default=40)
    p.add_argument("--batch-size", type=_count(1), default=8)
    p.add_argument("--learning-rate", type=_number(above=0.0, maximum=1.0), default=1e-4)
    p.add_argument("--max-length", type=_count(2), default=1024, help="longest prompt + completion in tokens")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (PEFT), merged into the saved checkpoint")
    p.add_argument("--lora-rank", type=_count(1), default=16)
    p.add_argument("--lora-alpha", type=_count(1), default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier `dca sft` checkpoint in --out (a directory holding sft.json)")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("eval", help="evaluate a model on problem sets: accuracy, tokens per insight, faithfulness, performative reasoning")
    p.add_argument("--model", default="embedded", help="'embedded', a checkpoint directory or a hub id")
    p.add_argument("--sets", default="synthetic-easy", help="comma-separated: synthetic-easy|medium|hard|distractors, gsm8k-test, gsm8k-train, a domain (logic, knights-knaves, ...; see `dca domains`), DOMAIN@FILE or a problems .jsonl, each with an optional :N limit")
    p.add_argument("--probes", default="early,mistakes,filler", help="comma-separated faithfulness probes (early, mistakes, filler), or '' for none")
    p.add_argument("--probe-sets", default=None, metavar="NAME,...", help="probe only these sets (names as in --sets, without :N); default: every set")
    p.add_argument("--probe-limit", type=_count(1), default=None, metavar="N", help="probe at most the first N traces of each probed set (the probes are the costly part)")
    p.add_argument("--reviewer", default="auto", help="who labels steps for tokens per insight: auto (oracle where the domain has one, reference on GSM8K), none, or a registry reviewer that needs no settings (oracle, reference, counterfactual)")
    p.add_argument("--samples", type=_count(1), default=1, help="traces per problem (pass@k with k = samples; needs --temperature > 0)")
    p.add_argument("--temperature", type=_number(0.0), default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", type=_count(1), default=160)
    p.add_argument("--batch-size", type=_count(1), default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cf-samples", type=_count(1), default=4, help="counterfactual reviewer: continuations per prefix")
    p.add_argument("--cf-threshold", type=_number(0.0, 1.0), default=0.25, help="counterfactual reviewer: |importance| that makes a unit useful or harmful")
    p.add_argument("--cf-mode", default="counterfactual", choices=("counterfactual", "resample"))
    p.add_argument("--judge", default=None, metavar="NAME", help="open-ended sets: the LLM reviewer that judges responses (the reward)")
    p.add_argument("--judge-reviewers", default=None, metavar="YAML", help="the reviewers file that declares --judge")
    p.add_argument("--out", required=True, help="output directory (eval.json, plots, per-set records)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --out")
    p.set_defaults(func=cmd_eval)

    from .persona_cli import add_parsers as add_persona_parsers

    add_persona_parsers(sub)

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
    return parser


#: Commands whose --out is a directory they lock (`dca.files.lock_dir`) while they write it.
_LOCKING_COMMANDS = ("cmd_train", "cmd_sft", "cmd_eval", "cmd_demo", "cmd_experiment_run", "cmd_persona_train")


def _refuse_a_second_writer(args: argparse.Namespace) -> None:
    """A directory another process is writing is refused first, before any config is read or
    library imported (in well under a second; benchmarks/refusal_latency.py)."""
    out = getattr(args, "out", None)
    if getattr(args.func, "__name__", "") in _LOCKING_COMMANDS and out and Path(out).is_dir():
        from .files import check_unlocked

        check_unlocked(Path(out))


def _silence_third_party() -> None:
    """Once, at start: library notices that say nothing to a DCA user (math-verify's "Timeout is
    disabled", printed by its parser and its grader each: DCA turns the timeout off on purpose
    outside the main thread, see dca.problems.answer; deprecation notices of the libraries)."""
    import logging
    import warnings

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _silence_third_party()
    try:
        _refuse_a_second_writer(args)
        return args.func(args)
    except UserError as e:  # an OutputFailure (full disk, read-only filesystem) exits 3
        print(f"dca: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except Exception as e:
        from .durable import ENVIRONMENT_EXIT_CODE, failure_line

        line = failure_line(e)  # an OS error on output that no command named: still one line
        if line is None:
            raise
        print(f"dca: error: {line}", file=sys.stderr)
        return ENVIRONMENT_EXIT_CODE
    except KeyboardInterrupt:
        print("dca: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("dca: terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
