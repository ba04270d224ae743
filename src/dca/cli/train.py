"""Commands that train and evaluate models: `dca warmstart`, `dca train`, `dca edit`, `dca sft`, `dca eval`, `dca persona-train`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from ..domains.sources import SyntheticSettings
from ..errors import UserError
from ..files import check_output_dir, prepare_output_dir, read_records, read_yaml, write_jsonl
from ..measures import token_counter, word_token_count
from ..model import SamplingConfig, load_tokenizer, portable_model_name, resolve_model_path
from ..records import Consensus, Edit, Problem, Review, Trace
from ..train.config import WarmstartSettings, load_train_config
from .common import _beside, _count, _log, _number, _out_file, _quiet_libraries, _read_records, _write_text
from .estimate import add_train_arguments as add_estimate_train_arguments
from .estimate import train_estimate


def cmd_warmstart(args: argparse.Namespace) -> int:
    from ..train.warmstart import warmstart  # start-up: the SFT stack loads only when this command runs

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

    recipe = yaml.safe_dump({"model": portable_model_name(args.model), "warmstart": settings.model_dump(mode="json")}, sort_keys=False, default_flow_style=None)
    _log(f"in a run config, name it model: {portable_model_name(str(path))} (this machine), or by its recipe (any machine):\n{recipe.rstrip()}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.estimate:  # issue 22: the reviews' cost before the run (dca.cli.estimate)
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
        from ..train.preflight import failed_before_first_step  # start-up: the reviewer registry and the run load only when this command runs

        config = load_train_config(args.config)
        # Checked again, with the config's own inputs, and locked by run_training; this early
        # check refuses a wrong --out before the training libraries are imported. A run that
        # failed before its first step holds nothing to keep: run_training replaces it.
        rerun = args.overwrite or failed_before_first_step(args.out) is not None
        check_output_dir(args.out, overwrite=rerun, marker="run.json", kind="a DCA run", inputs=[args.config])
    from ..train.run import run_training

    _quiet_libraries()
    summary, run = run_training(config, args.out, overwrite=args.overwrite, resume=args.resume, log=_log)
    if run.writer:
        _print_summary(summary, run.path, policy=config.credit.policy)
    return 0


def _print_summary(summary: dict, path: Path, *, policy: str) -> None:
    from rich.console import Console  # start-up: rich loads only when a table is printed
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


def _edit_labels(args: argparse.Namespace) -> dict:
    """Labels by trace id: a consensus file, or a reviews file with one review per trace."""
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
    if name == "words":
        return word_token_count

    _quiet_libraries()
    tokenizer = load_tokenizer(name)
    return token_counter(tokenizer)


def _print_edit_figures(figures: dict, title: str) -> None:
    from rich.console import Console  # start-up: rich loads only when a table is printed
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
    from ..edit import EditConfig, LLMBridgeWriter, edit_figures, edit_traces  # start-up: editing and the LLM client load only for this command

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
        from ..review import ReviewCache, default_cache_path, load_reviewers

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
    from ..train.sft import SFTSettings, run_sft  # start-up: the SFT stack loads only when this command runs

    try:
        settings = SFTSettings(
            max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate, max_length=args.max_length,
            lora=args.lora, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, seed=args.seed,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from e

    inputs = [args.edits] + ([args.model] if Path(args.model).exists() else [])
    out = check_output_dir(args.out, overwrite=args.overwrite, marker="sft.json", kind="a DCA sft checkpoint", inputs=inputs)
    edits = _read_records(args.edits, Edit, "edits")
    if not any(e.status != "skipped" for e in edits):
        raise UserError(f"{args.edits} holds no trained-on edit (every trace was skipped); edit solved traces first")

    resolve_model_path(args.model)  # before the training libraries load
    _quiet_libraries()
    summary = run_sft(edits, args.model, out, settings, edits_path=args.edits, log=_log)
    last = summary["losses"][-1]["loss"] if summary["losses"] else float("nan")
    _log(f"sft checkpoint: {out} ({summary['rows']} completions, {settings.max_steps} steps, last loss {last:.3f})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    # The output directory is checked again (and locked) by run_eval; this early check refuses
    # a wrong --out before the model libraries are imported.
    check_output_dir(args.out, overwrite=args.overwrite, marker="eval.json", kind="a DCA evaluation", inputs=[args.model])

    resolve_model_path(args.model)
    from ..continuation import ContinuationSettings  # start-up: the evaluation stack loads only when this command runs
    from ..evaluate import EvalConfig, print_table, run_eval

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


def _personas(value: str) -> list:
    """Built-in names separated by commas, or a YAML file with a ``personas:`` list."""
    from ..review.persona import resolve_personas  # start-up: the review stack loads only when this command runs

    if value.endswith((".yaml", ".yml")):
        path = Path(value)
        data = read_yaml(path, what="personas")
        entries = data.get("personas") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise UserError(f"{path} must hold a 'personas:' list")
        return resolve_personas(entries)
    return resolve_personas([name.strip() for name in value.split(",") if name.strip()])


def _labels(path: str) -> list:
    """Review or Consensus records, told apart by the first record's fields."""
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
    from ..train.persona import PersonaTrainSettings, run_persona_train  # start-up: persona training loads only when this command runs
    from ..train.sft import SFTSettings

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
    """The group's subcommands."""
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
