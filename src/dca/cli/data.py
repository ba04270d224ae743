"""Commands that make and sample problems: `dca problems`, `dca domains`, `dca generate`, `dca rollout`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..domains import DOMAINS, get_domain
from ..domains.sources import DomainSettings, ProblemsSettings, SyntheticSettings, load_problems
from ..errors import UserError
from ..files import read_problems_file, write_jsonl
from ..model import SamplingConfig, load_model, resolve_model_path
from ..rollout import check_micro_problems, rollout, summarize
from ..terminal import console
from .common import _count, _log, _number, _out_file, _quiet_libraries


def cmd_problems(args: argparse.Namespace) -> int:
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
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def cmd_domains(args: argparse.Namespace) -> int:
    from rich.markup import escape  # start-up: rich loads only when a table is printed
    from rich.table import Table

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
    from ..generate import run_generate  # start-up: the generator and the LLM client load only when this command runs
    from ..review import default_cache_path

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


def add_parsers(sub) -> None:
    """The group's subcommands."""
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
