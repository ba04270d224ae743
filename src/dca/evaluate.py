"""`dca eval`: one evaluation of a checkpoint on several problem sets, side by side.

    dca eval --model embedded --sets synthetic-easy:24,gsm8k-test:16 --probes early,mistakes,filler --out runs/eval

Per problem set (`dca.domains.sources.parse_set_spec`: ``synthetic-easy|medium|hard|distractors``,
``gsm8k-test``, ``gsm8k-train``, any registered domain (``logic``, ``knights-knaves``, ...;
generated with the evaluation seed), ``DOMAIN@FILE``, or a problems JSON-lines file, each
with an optional ``:N`` limit; one column per set, so several domains give the
cross-domain table):

- **accuracy** of the sampled traces with a 95 % Wilson interval (over traces; with several
  samples per problem they are not independent, so the interval is then optimistic), and
  **pass@k** (the unbiased estimator of Chen et al. 2021) for k = 1 and k = samples;
- **mean completion tokens** and **mean CoT tokens** (before the answer statement);
- **tokens per insight**: completion tokens ÷ steps labelled with a `USEFUL_CONTRIBUTIONS`
  label by the set's reviewer (oracle for synthetic problems, reference for GSM8K, or the
  counterfactual reviewer), averaged over traces with at least one useful step. This is
  `dca.edit.edit_figures`'s definition (``tokens_per_insight_before``), which uses solved
  traces only: ``tokens_per_insight_solved`` is that figure;
- **faithfulness** (`dca.faithfulness`): early answering (AOC per CoT-length bucket and
  weighted), adding mistakes (answer changed), filler (accuracy change);
- **performative-reasoning indicators**: verification and backtracking phrases per trace
  (`dca.faithfulness.VERIFICATION` / `BACKTRACKING`); the fraction of reviewed units labelled
  irrelevant; *caught own mistakes*: units the reviewer labels ``error`` that a later unit of
  the same trace follows with a backtracking phrase; and the fraction of all caught mistakes
  (own ones plus the planted mistakes of the mistakes probe that the continuation caught)
  that the model introduced itself.

One evaluation path: `evaluate_problems` samples a set, reviews it and computes its figures
(`set_figures`) for ``dca eval``, for the experiment runner's curve along training
(`dca.experiment.runner`) and for training's evaluation before and after (`dca.train.run`);
the reviewer comes from the registry (`dca.review.reviewer_for`, which resolves ``auto``).

Reproducibility: the config (model, seeds, sampling and continuation settings, probe
settings), each set's SHA-256 of its problems, and the library versions are stored in
``eval.json`` beside the results; generation is seeded (`dca.rollout`, `dca.continuation`),
so the same command gives the same ``results`` on the CPU (timings are kept apart, under
``timing``). A failed item (a rollout batch, a review, a probe continuation) is recorded
under ``failures`` or in its record's status and counted, never a crash.

The output directory holds ``eval.json``, per set ``<set>.traces.jsonl``,
``<set>.reviews.jsonl`` and ``<set>.probes.jsonl``, and the plots ``accuracy.png``,
``tokens_per_insight.png`` and ``early_answering.png``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.markup import escape
from rich.table import Table

from .caveats import format_failure_warning, warn
from .continuation import ContinuationSettings, HFContinuationEngine, split_cot
from .domains import check, domain_of
from .domains.judge import Judge, use_judge
from .domains.sources import DEFAULT_SYNTHETIC_COUNT, EVAL_SEED, SYNTHETIC_SETS, SetSpec, load_set, parse_set_spec
from .errors import UserError
from .faithfulness import (
    BACKTRACKING, DEFAULT_BUCKETS, PROBES, VERIFICATION, ProbeItem, adding_mistakes, early_answering, filler, probe_figures, reference_answers,
)
from .files import prepare_output_dir, unlock_dir, write_jsonl, write_text_atomic
from .measures import labelled_tokens, token_counter, tokens_per_insight, useful_steps
from .model import SamplingConfig, load_model, resolve_model_path
from .records import Problem, Review, Trace, to_dict
from .review import BuildContext, CounterfactualConfig, ReviewCache, default_cache_path, load_reviewers, review_traces, reviewer_for
from .review.registry import REGISTRY, builtin_spec
from .rollout import check_micro_problems, render_prompt, rollout
from .segment import segment
from .terminal import console

Log = Callable[[str], None]


def eval_reviewers() -> tuple[str, ...]:
    """``--reviewer`` choices: auto, none, and every registry reviewer that needs no settings."""
    return ("auto", *(name for name in REGISTRY if builtin_spec(name) is not None), "none")


# ---------------------------------------------------------------------------------------------
# Problem sets: `dca.domains.sources` (SetSpec, parse_set_spec, load_set) is their one home.


def problems_hash(problems: list[Problem]) -> str:
    """SHA-256 of the problems' canonical JSON: the same set gives the same hash."""
    digest = hashlib.sha256()
    for problem in problems:
        digest.update(json.dumps(to_dict(problem), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Pure figures


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None when n = 0."""
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 − C(n−c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def caught_own_mistakes(review: Review) -> int:
    """Units labelled ``error`` (not the answer statement) followed later in the trace by a
    unit with a backtracking phrase."""
    contributions = review.unit_contributions()
    functions: list[str | None] = [None] * len(review.units)
    for step in review.steps:
        for i in range(step.first_unit, step.last_unit + 1):
            functions[i] = step.function
    caught = 0
    for i, label in enumerate(contributions):
        if label == "error" and functions[i] != "conclusion":
            if any(BACKTRACKING.search(u.text) for u in review.units[i + 1 :]):
                caught += 1
    return caught


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def set_figures(
    traces: list[Trace],
    reviews: list[Review],
    *,
    samples: int,
    count_tokens: Callable[[str], int],
    problems: dict[str, Problem] | None = None,
) -> dict[str, Any]:
    """Accuracy, pass@k, tokens, tokens per insight, the irrelevant share (tokens of units
    labelled irrelevant ÷ tokens of labelled units, `dca.measures.labelled_tokens`) and the
    text-only performative indicators.

    With `problems`, ``lenient_answers`` is the share of traces whose final answer was found
    only in a lenient form (``#### 18``, ``A: 18``, "The answer is 18"), counted apart from
    the strict ``Answer: 18`` the prompt asks for.
    """
    n = len(traces)
    correct = sum(t.outcome == "correct" for t in traces)
    interval = wilson_interval(correct, n)
    by_problem: dict[str, list[Trace]] = {}
    for trace in traces:
        by_problem.setdefault(trace.problem_id, []).append(trace)
    pass_k = {}
    for k in sorted({1, samples}):
        values = [pass_at_k(len(g), sum(t.outcome == "correct" for t in g), k) for g in by_problem.values() if len(g) >= k]
        pass_k[f"pass@{k}"] = _mean(values)
    tokens = {t.id: count_tokens(t.completion) for t in traces}
    outcome = {t.id: t.outcome for t in traces}
    ok_reviews = [r for r in reviews if r.status == "ok"]
    with_insight = [r for r in ok_reviews if useful_steps(r)]
    per_insight = tokens_per_insight((tokens[r.trace_id], useful_steps(r)) for r in ok_reviews)
    per_insight_solved = tokens_per_insight((tokens[r.trace_id], useful_steps(r)) for r in ok_reviews if outcome[r.trace_id] == "correct")
    labels = [label for r in ok_reviews for label in r.unit_contributions() if label is not None]
    labelled = [labelled_tokens(r, count_tokens) for r in ok_reviews]
    labelled_total = sum(n for n, _ in labelled)
    own_caught = sum(caught_own_mistakes(r) for r in ok_reviews)
    return {
        "problems": len(by_problem),
        "traces": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "accuracy_ci95": list(interval) if interval else None,
        "format_failures": sum(t.outcome == "format_failure" for t in traces) / n if n else None,
        "lenient_answers": (
            sum(check(problems[t.problem_id], t.completion).form == "lenient" for t in traces) / n
            if n and problems is not None and all(t.problem_id in problems for t in traces)
            else None
        ),
        "judge_failures": sum(t.outcome == "judge_failed" for t in traces),
        **pass_k,
        "mean_completion_tokens": _mean(list(tokens.values())),
        "mean_cot_tokens": _mean([count_tokens(split_cot(t.completion).text) for t in traces]),
        "mean_units": _mean([len(segment(t.completion)) for t in traces]),
        "reviews_ok": len(ok_reviews),
        "reviews_failed": len(reviews) - len(ok_reviews),
        "traces_with_insight": len(with_insight),
        "tokens_per_insight": per_insight,
        "tokens_per_insight_solved": per_insight_solved,
        "mean_useful_steps": _mean([useful_steps(r) for r in ok_reviews]),
        "irrelevant_share": sum(n for _, n in labelled) / labelled_total if labelled_total else None,
        "performative": {
            "verification_phrases_per_trace": _mean([len(VERIFICATION.findall(t.completion)) for t in traces]),
            "backtracking_phrases_per_trace": _mean([len(BACKTRACKING.findall(t.completion)) for t in traces]),
            "fraction_units_irrelevant": sum(label == "irrelevant" for label in labels) / len(labels) if labels else None,
            "caught_own_mistakes": own_caught,
        },
    }


# ---------------------------------------------------------------------------------------------
# The evaluation


@dataclass(kw_only=True)
class EvalConfig:
    """Everything that fixes an evaluation's numbers (stored in ``eval.json``)."""

    model: str = "embedded"
    sets: list[str] = field(default_factory=lambda: ["synthetic-easy"])
    probes: list[str] = field(default_factory=lambda: list(PROBES))
    reviewer: str = "auto"
    """``auto`` (oracle where a problem has a known structure, reference where it has a
    reference solution), ``oracle``, ``reference``, ``counterfactual`` or ``none``."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=160))
    """How the evaluated traces are drawn (greedy by default)."""
    continuation: ContinuationSettings = field(default_factory=ContinuationSettings)
    """How probe continuations and forced answers are drawn (greedy by default)."""
    synthetic_seed: int = EVAL_SEED
    mistake_seed: int = 0
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    counterfactual: dict[str, Any] = field(default_factory=dict)
    """`CounterfactualConfig` fields, for ``reviewer: counterfactual``."""
    judge: str | None = None
    """For open-ended sets: the reviewer of `judge_reviewers` that judges responses (`dca.domains.judge`)."""
    judge_reviewers: str | None = None
    judge_pass_score: int = 7
    probe_sets: list[str] | None = None
    """Names of the sets (as in `sets`, without ``:N``) whose traces are probed; None: all."""
    probe_limit: int | None = None
    """Probe at most the first N traces of each probed set; None: all (probes are the costly part)."""

    def __post_init__(self) -> None:
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown:
            raise UserError(f"unknown probe(s) {unknown}: choose from {', '.join(PROBES)}")
        if self.reviewer not in eval_reviewers():
            raise UserError(f"unknown reviewer {self.reviewer!r}: choose from {', '.join(eval_reviewers())}")
        if not self.sets:
            raise UserError("give at least one problem set with --sets")
        if self.probe_limit is not None and self.probe_limit < 1:
            raise UserError(f"probe_limit must be at least 1 (got {self.probe_limit})")
        if self.reviewer == "counterfactual":
            try:
                CounterfactualConfig(**self.counterfactual)
            except (TypeError, ValueError) as e:
                raise UserError(f"counterfactual reviewer: {e}") from e


@dataclass(kw_only=True)
class SetEvaluation:
    """One problem set sampled, reviewed and measured (`evaluate_problems`)."""

    traces: list[Trace]
    reviews: list[Review]
    """One per trace by the set's reviewer; none without a reviewer."""
    figures: dict[str, Any]
    """`set_figures`, plus ``reviewer`` (its name, or None)."""
    failures: list[dict[str, Any]]
    """A failed rollout (the whole set: no traces) and each failed review, as ``{set, stage, item, error}``."""


def evaluate_problems(
    name: str,
    problems: list[Problem],
    model,
    tokenizer,
    sampling: SamplingConfig,
    *,
    reviewer=None,
    count_tokens: Callable[[str], int] | None = None,
    model_name: str = "",
) -> SetEvaluation:
    """The one evaluation of a problem set: sample `sampling`'s traces, review them with
    `reviewer` (`dca.review.review_traces`; None: no reviews) and compute `set_figures`
    (tokens counted by `count_tokens`, else the tokenizer's). A rollout that fails is recorded
    in ``failures`` (the set then has no traces), never raised."""
    by_id = {p.id: p for p in problems}
    failures: list[dict[str, Any]] = []
    traces: list[Trace] = []
    try:
        traces = rollout(model, tokenizer, problems, sampling, model_name=model_name)
    except Exception as e:  # the whole set failed to sample: recorded, the caller goes on
        failures.append({"set": name, "stage": "rollout", "error": f"{type(e).__name__}: {e}"})
    reviews = review_traces([reviewer], traces, by_id) if reviewer is not None else []
    failures += [{"set": name, "stage": "review", "item": r.trace_id, "error": r.error} for r in reviews if r.status != "ok"]
    count_tokens = count_tokens or token_counter(tokenizer)
    figures = set_figures(traces, reviews, samples=sampling.samples_per_problem, count_tokens=count_tokens, problems=by_id)
    figures["reviewer"] = getattr(reviewer, "name", None)
    return SetEvaluation(traces=traces, reviews=reviews, figures=figures, failures=failures)


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("deliberative-credit", "torch", "transformers", "math-verify"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run_eval(config: EvalConfig, out: str | Path, *, model=None, tokenizer=None, overwrite: bool = False, log: Log = lambda _: None) -> dict[str, Any]:
    """Evaluate `config.model` (or the given model and tokenizer) and write the output directory.

    Returns the content of ``eval.json``: ``config``, ``sets`` (name, source, hash, count),
    ``results`` (per set: figures, faithfulness), ``failures``, ``timing``, ``versions``.
    """
    specs = [parse_set_spec(s) for s in config.sets]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"problem set names repeat in --sets: {names}")
    unknown = [n for n in config.probe_sets or [] if n not in names]
    if unknown:
        raise UserError(f"probe set(s) {unknown} are not among the evaluated sets {names}")
    loaded = {s.name: load_set(s, seed=config.synthetic_seed) for s in specs}
    check_micro_problems(resolve_model_path(config.model), [p for problems in loaded.values() for p in problems])
    judge = _make_judge(config, [p for problems in loaded.values() for p in problems])
    inputs = [s.source.rpartition("@")[2] for s in specs] + [config.model]  # only existing paths count
    out_dir = prepare_output_dir(out, overwrite=overwrite, marker="eval.json", kind="a DCA evaluation", inputs=inputs)
    if model is None:
        model, tokenizer = load_model(config.model)
    engine = HFContinuationEngine(model, tokenizer, name=config.model)

    count_tokens = token_counter(tokenizer)
    report: dict[str, Any] = {
        "config": _config_dict(config),
        "sets": [
            {"name": s.name, "source": s.source, "limit": s.limit, "problems": len(loaded[s.name]), "sha256": problems_hash(loaded[s.name])}
            for s in specs
        ],
        "versions": _versions(),
        "results": {},
        "failures": [],
        "timing": {},
    }
    with use_judge(judge):
        for spec in specs:
            started = time.time()
            problems = loaded[spec.name]
            by_id = {p.id: p for p in problems}
            log(f"[{spec.name}] {len(problems)} problems: sampling {len(problems) * config.sampling.samples_per_problem} traces")
            result, failures = _evaluate_set(spec.name, problems, by_id, config, model, tokenizer, engine, count_tokens, out_dir, log)
            report["results"][spec.name] = result
            report["failures"] += failures
            report["timing"][spec.name] = round(time.time() - started, 1)
    if judge is not None:
        report["judge"] = judge.stats.as_dict()
        judge.close()
    report["warnings"] = []
    for name, result in report["results"].items():
        message = format_failure_warning(result, f"set {name}")
        if message:
            warn(message, report["warnings"])
    write_text_atomic(out_dir / "eval.json", json.dumps(report, indent=2) + "\n")
    try:
        write_plots(report, out_dir)
    except Exception as e:  # plots are a view of eval.json; a plotting failure is recorded
        report["failures"].append({"set": None, "stage": "plots", "error": f"{type(e).__name__}: {e}"})
        write_text_atomic(out_dir / "eval.json", json.dumps(report, indent=2) + "\n")
    unlock_dir(out_dir)
    return report


def _make_judge(config: EvalConfig, problems: list[Problem]):
    """The LLM judge for open-ended sets (None when no set needs one); a needed but missing
    judge is a UserError."""
    judged = sorted({domain_of(p).name for p in problems if domain_of(p).needs_judge})
    if config.judge is None:
        if judged:
            raise UserError(f"{', '.join(judged)} sets have no verifier: pass --judge NAME --judge-reviewers FILE (an LLM reviewer)")
        return None
    if config.judge_reviewers is None:
        raise UserError("--judge needs --judge-reviewers FILE, the reviewers YAML that declares it")

    (spec,) = load_reviewers(config.judge_reviewers, only=[config.judge])
    return Judge(spec, cache=ReviewCache(default_cache_path()), pass_score=config.judge_pass_score)


def _config_dict(config: EvalConfig) -> dict[str, Any]:
    data = asdict(config)
    data["buckets"] = list(config.buckets)
    return data


def _evaluate_set(name, problems, by_id, config, model, tokenizer, engine, count_tokens, out_dir, log):
    # a counterfactual reviewer probes the evaluated model (`engine`)
    context = BuildContext(engine=engine, render_prompt=lambda p: render_prompt(tokenizer, p))
    reviewer = reviewer_for(config.reviewer, problems, context, counterfactual=config.counterfactual)
    evaluation = evaluate_problems(
        name, problems, model, tokenizer, config.sampling, reviewer=reviewer, count_tokens=count_tokens, model_name=config.model
    )
    traces, reviews, figures, failures = evaluation.traces, evaluation.reviews, evaluation.figures, evaluation.failures
    write_jsonl(out_dir / f"{name}.traces.jsonl", traces)
    write_jsonl(out_dir / f"{name}.reviews.jsonl", reviews)
    figures["domain"] = ", ".join(sorted({p.domain for p in problems})) or None
    if config.reviewer == "counterfactual":
        figures["reviewer_generated_tokens"] = sum(r.usage.get("generated_tokens", 0) for r in reviews)

    probe_items: list[ProbeItem] = []
    faithfulness: dict[str, Any] = {}
    # the probes read the first probe_limit traces (every figure above uses all of them)
    probed = traces[: config.probe_limit] if config.probe_limit is not None else traces
    if config.probes and probed and (config.probe_sets is None or name in config.probe_sets):
        try:
            log(f"[{name}] probes: reference answers")
            reference = reference_answers(probed, by_id, engine, config.continuation)
            references = {i.trace_id: i.data["answer"] for i in reference if i.status == "ok"}
            early = mistakes = filled = None
            if "early" in config.probes:
                log(f"[{name}] probes: early answering")
                early = early_answering(probed, by_id, references, engine, config.continuation)
            if "mistakes" in config.probes:
                log(f"[{name}] probes: adding mistakes")
                mistakes = adding_mistakes(probed, by_id, references, engine, config.continuation, seed=config.mistake_seed)
            if "filler" in config.probes:
                log(f"[{name}] probes: filler")
                filled = filler(probed, by_id, engine, config.continuation, count_tokens=count_tokens)
            faithfulness = probe_figures(reference, early, mistakes, filled, edges=config.buckets)
            for items in (reference, early, mistakes, filled):
                probe_items += items or []
        except Exception as e:  # a probe that crashes outright: recorded, the set's other figures stand
            failures.append({"set": name, "stage": "probes", "error": f"{type(e).__name__}: {e}"})
    failures += [
        {"set": name, "stage": f"probe:{i.probe}", "item": i.trace_id, "error": i.reason} for i in probe_items if i.status == "failed"
    ]
    write_jsonl(out_dir / f"{name}.probes.jsonl", probe_items)
    if "mistakes" in faithfulness:
        planted_caught = sum(bool(i.data.get("caught")) for i in probe_items if i.probe == "mistakes" and i.status == "ok")
        own = figures["performative"]["caught_own_mistakes"]
        figures["performative"]["caught_planted_mistakes"] = planted_caught
        figures["performative"]["fraction_caught_self_introduced"] = own / (own + planted_caught) if own + planted_caught else None
    figures["faithfulness"] = faithfulness
    figures["probe_generated_tokens"] = sum(i.generated_tokens for i in probe_items)
    figures["failed_items"] = len(failures)
    return figures, failures


# ---------------------------------------------------------------------------------------------
# Views: terminal table and plots


def _show(value, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{value:.1%}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """``(figure, value per set...)`` rows of the terminal table."""
    results = report["results"]
    names = list(results)

    def row(label: str, get: Callable[[dict], Any], percent: bool = False) -> tuple[str, ...]:
        values = []
        for n in names:
            try:
                values.append(_show(get(results[n]), percent))
            except (KeyError, TypeError):
                values.append("-")
        return (label, *values)

    def ci(r: dict) -> str:
        low, high = r["accuracy_ci95"]
        return f"{low:.1%} – {high:.1%}"

    rows = [
        row("domain", lambda r: r["domain"]),
        row("problems / traces", lambda r: f"{r['problems']} / {r['traces']}"),
        row("accuracy", lambda r: r["accuracy"], True),
        row("  95% CI (Wilson)", ci),
        row("format failures", lambda r: r["format_failures"], True),
        row("answers in a lenient form", lambda r: r.get("lenient_answers"), True),
        row("judge failures (no reward)", lambda r: r["judge_failures"]),
    ]
    rows += [row(k, lambda r, k=k: r[k], True) for k in sorted({k for r in results.values() for k in r if k.startswith("pass@")})]
    rows += [
        row("mean completion tokens", lambda r: r["mean_completion_tokens"]),
        row("mean CoT tokens", lambda r: r["mean_cot_tokens"]),
        row("reviewer (ok / failed)", lambda r: f"{r['reviewer']} ({r['reviews_ok']} / {r['reviews_failed']})"),
        row("tokens per insight", lambda r: r["tokens_per_insight"]),
        row("tokens per insight (solved)", lambda r: r["tokens_per_insight_solved"]),
        row("early answering: AOC (weighted)", lambda r: r["faithfulness"]["early"]["aoc"]["weighted"]),
        row("early answering: traces ok/skip/fail", lambda r: "{ok}/{skipped}/{failed}".format(**r["faithfulness"]["early"])),
        row("no-CoT accuracy (forced)", lambda r: r["faithfulness"]["early"]["no_cot_accuracy"], True),
        row("full-CoT accuracy (forced)", lambda r: r["faithfulness"]["reference"]["forced_accuracy"], True),
        row("mistakes: answer changed", lambda r: r["faithfulness"]["mistakes"]["answer_changed"], True),
        row("filler: accuracy", lambda r: r["faithfulness"]["filler"]["accuracy"], True),
        row("filler: accuracy change", lambda r: r["faithfulness"]["filler"]["accuracy_change"]),
        row("verification phrases / trace", lambda r: r["performative"]["verification_phrases_per_trace"]),
        row("backtracking phrases / trace", lambda r: r["performative"]["backtracking_phrases_per_trace"]),
        row("units labelled irrelevant", lambda r: r["performative"]["fraction_units_irrelevant"], True),
        row("caught mistakes: own / planted", lambda r: f"{r['performative']['caught_own_mistakes']} / {r['performative'].get('caught_planted_mistakes', '-')}"),
        row("failed items", lambda r: r["failed_items"]),
    ]
    return rows


def print_table(report: dict[str, Any]) -> None:
    table = Table(title=f"dca eval: {escape(report['config']['model'])}")
    table.add_column("figure")
    for name in report["results"]:
        table.add_column(escape(name), justify="right")
    for row in table_rows(report):
        table.add_row(*(escape(cell) for cell in row))
    console(160).print(table)


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """``accuracy.png`` (with the Wilson interval), ``tokens_per_insight.png`` and
    ``early_answering.png`` (the mean curve per set; only when an early-answering probe ran)."""
    import matplotlib  # heavy: matplotlib loads only when plots are written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    names = list(results)
    written = []

    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.2))
    accuracy = [results[n]["accuracy"] or 0.0 for n in names]
    errors = [
        [a - (results[n]["accuracy_ci95"] or [a, a])[0] for n, a in zip(names, accuracy)],
        [(results[n]["accuracy_ci95"] or [a, a])[1] - a for n, a in zip(names, accuracy)],
    ]
    ax.bar(names, accuracy, yerr=errors, capsize=4, color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_title(f"accuracy: {report['config']['model']}")
    fig.tight_layout()
    written.append(out_dir / "accuracy.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.2))
    values = [results[n]["tokens_per_insight"] or 0.0 for n in names]
    ax.bar(names, values, color="#55a868")
    for i, n in enumerate(names):
        ax.annotate(results[n].get("reviewer") or "no reviewer", (i, values[i]), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("completion tokens per useful step")
    ax.set_title("tokens per insight")
    fig.tight_layout()
    written.append(out_dir / "tokens_per_insight.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    curves = {n: results[n].get("faithfulness", {}).get("early") for n in names}
    curves = {n: early for n, early in curves.items() if early and early["mean_curve"]["same_answer"]}
    if not curves:  # no early-answering probe ran: no empty plot
        return written
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for n, early in curves.items():
        aoc = early["aoc"]["weighted"]
        label = f"{n} (AOC {aoc:.2f}, {early['ok']} traces)" if aoc is not None else n
        ax.plot(early["mean_curve"]["fraction_of_cot"], early["mean_curve"]["same_answer"], marker="o", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("fraction of CoT shown")
    ax.set_ylabel("same answer as with the full CoT")
    ax.set_title("early answering")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out_dir / "early_answering.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


__all__ = [
    "DEFAULT_SYNTHETIC_COUNT",
    "EVAL_SEED",
    "EvalConfig",
    "SetEvaluation",
    "eval_reviewers",
    "evaluate_problems",
    "SYNTHETIC_SETS",
    "SetSpec",
    "caught_own_mistakes",
    "load_set",
    "parse_set_spec",
    "pass_at_k",
    "print_table",
    "problems_hash",
    "run_eval",
    "set_figures",
    "table_rows",
    "useful_steps",
    "wilson_interval",
    "write_plots",
]
