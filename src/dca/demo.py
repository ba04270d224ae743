"""`dca demo`: a two-arm experiment — plain GRPO beside DCA — on the CPU.

The demo is a small `dca.experiment` spec. By default it runs in the micro world
(`micro_demo_spec`, docs/micro-world.md): the shipped warm-started micro model, whose gold CoTs
carried padding of three kinds, trained for enough steps that the arms can separate, and
evaluated on 200 held-out problems with 95 % intervals (`demo_intervals`: a paired bootstrap
over problems of each figure's difference between the arms). ``--world smollm2`` runs the
earlier demo on the embedded SmolLM2 (`demo_spec`): one warm start on gold CoTs that carry
irrelevant steps (30 %), then a few GRPO steps. Either way, two GRPO runs of the same length
from one start, same seed and problem order, differ only in where the advantage lands:

- ``grpo``: uniform credit (plain GRPO);
- ``dca``: the ``signed`` policy with the oracle reviewer (positive advantages on the units the
  oracle calls useful, negative ones on the units it blames).

It prints, side by side, the start model and each arm after training on the held-out problems
(accuracy, CoT tokens, tokens per insight, irrelevant share; the oracle labels the units) and
where each arm's training advantages landed by the oracle's labels (`credit_placement`): under
GRPO every token of a completion gets its advantage, irrelevant padding included; under DCA the
padding of a good completion gets none and a bad completion's penalty lands on its wrong step.
A few CPU steps do not change the model much (the held-out figures move little); the phase-1
experiment (`experiments/phase1-cpu.yaml`, docs/results/phase1-cpu.md) measures training
effects with intervals. The demo also writes a viewer page per arm.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
from rich.table import Table

from .errors import UserError
from .experiment.measures import read_rows, run_credit_placement
from .experiment.runner import run_experiment
from .experiment.spec import ExperimentSpec, parse_spec
from .files import check_output_dir, read_yaml, write_json, write_text_atomic
from .report import collect_inputs, render_report
from .terminal import console as table_console
from .train.micro import MICRO_PROBLEMS

Log = Callable[[str], None]

ARMS = {"grpo": "plain GRPO (uniform credit)", "dca": "DCA: oracle reviews, signed credit"}


WORLDS = ("micro", "smollm2")
#: Defaults of each world: GRPO steps per arm, warm-start steps (smollm2 only), held-out problems.
DEFAULTS = {"micro": {"steps": 60, "warmstart_steps": 0, "eval_problems": 200}, "smollm2": {"steps": 3, "warmstart_steps": 24, "eval_problems": 16}}


def micro_demo_spec(steps: int, eval_problems: int) -> ExperimentSpec:
    """The micro-world demo: the shipped micro start, padding free (the length limit well above
    padded gold CoTs), 16 completions a step."""
    easy = {**MICRO_PROBLEMS, "distractors": list(MICRO_PROBLEMS["distractors"])}
    arm = {"condition": "padding-free"}
    return parse_spec(
        {
            "name": "demo",
            "description": "dca demo: plain GRPO beside DCA from the micro world's start model",
            "start": {"model": "micro", "measure": 0},
            "base": {
                "reviewer": "oracle",
                "problems": {"synthetic": {"count": 512, "seed": 1, **easy}},
                "grpo": {"steps": steps, "num_generations": 8, "prompts_per_step": 2, "learning_rate": 5e-5, "temperature": 1.0},
            },
            "arms": {
                "grpo": {**arm, "overrides": {"credit": {"policy": "uniform"}}, "description": ARMS["grpo"]},
                "dca": {**arm, "overrides": {"credit": {"policy": "signed"}}, "description": ARMS["dca"]},
            },
            "seeds": [0],
            "eval": {
                "every": 0,
                "curve_limit": eval_problems,
                "max_new_tokens": 160,
                "probes": [],
                "sets": [{"name": "held-out", "problems": {"synthetic": {"count": eval_problems, "seed": 2, **easy}}}],
            },
        },
        where="demo",
    )


def demo_spec(steps: int, warmstart_steps: int, eval_problems: int) -> ExperimentSpec:
    """The SmolLM2 demo (``--world smollm2``)."""
    easy = {"min_operations": 1, "max_operations": 1, "distractors": [1, 2], "max_value": 20}
    return parse_spec(
        {
            "name": "demo",
            "description": "dca demo: plain GRPO beside DCA from one warm start of the embedded model",
            "start": {
                "model": "embedded",
                # gold CoTs with 30 % irrelevant steps: the start model writes padding credit can act on
                # batches of 4: more updates per CoT seen, which teaches the format in fewer CPU seconds
                "warmstart": {"steps": warmstart_steps, "batch_size": 4, "learning_rate": 2e-4, "irrelevant_rate": 0.3,
                              "problems": {"count": warmstart_steps * 4, "seed": 1000, **easy}},  # fmt: skip
                "measure": 0,
            },
            "base": {
                "reviewer": "oracle",
                "problems": {"synthetic": {"count": 64, "seed": 1, **easy}},
                # temperature 0.7: at 1.0 the warm-started 135M model rarely samples a correct answer
                "grpo": {"steps": steps, "num_generations": 8, "prompts_per_step": 1, "max_completion_length": 96, "learning_rate": 1e-5, "temperature": 0.7},
            },
            "arms": {
                "grpo": {"overrides": {"credit": {"policy": "uniform"}}, "description": ARMS["grpo"]},
                "dca": {"overrides": {"credit": {"policy": "signed"}}, "description": ARMS["dca"]},
            },
            "seeds": [0],
            "eval": {
                "every": 0,
                "curve_limit": eval_problems,
                "max_new_tokens": 96,
                "probes": [],
                "sets": [{"name": "held-out", "problems": {"synthetic": {"count": eval_problems, "seed": 2, **easy}}}],
            },
        },
        where="demo",
    )


def run_demo(
    out: str | Path, *, world: str = "micro", steps: int | None = None, warmstart_steps: int | None = None, eval_problems: int | None = None,
    overwrite: bool, log: Log = print,
) -> dict:
    """Run the demo into `out` (an experiment directory) and return its figures (``demo.json``)."""
    defaults = DEFAULTS[world]
    steps = steps or defaults["steps"]
    eval_problems = eval_problems or defaults["eval_problems"]
    if world == "micro":
        if warmstart_steps is not None:
            raise UserError("--warmstart-steps applies to --world smollm2; the micro world starts from its shipped warm start")
        spec = micro_demo_spec(steps, eval_problems)
    else:
        spec = demo_spec(steps, warmstart_steps or defaults["warmstart_steps"], eval_problems)
    out = check_output_dir(out, overwrite=overwrite, marker="spec.yaml", kind="a DCA demo")
    if out.is_dir() and any(out.iterdir()):  # --overwrite of an earlier demo, never of another experiment
        earlier = read_yaml(out / "spec.yaml", what="demo spec")
        if not isinstance(earlier, dict) or earlier.get("name") != "demo":
            raise UserError(f"--out {out} holds an experiment that is not a demo; refusing to overwrite it")
        shutil.rmtree(out)
    started = time.time()
    run_experiment(spec, out, log=log)
    figures = demo_figures(out)
    figures["world"] = world
    figures["seconds"] = round(time.time() - started, 1)
    for arm in ARMS:
        figures["viewer"][arm] = str(write_viewer(out, arm))
    write_json(out / "demo.json", figures)
    return figures


def demo_figures(out: Path) -> dict:
    """The start model's and each arm's held-out figures, and where each arm's advantages landed."""
    start = {row["set"]: row for row in read_rows(out / "start" / "curve.jsonl")}
    figures: dict = {"start": start["held-out"], "arms": {}, "viewer": {}}
    for arm in ARMS:
        run = out / "runs" / arm / "seed-0"
        final = json.loads((run / "final.json").read_text(encoding="utf-8"))
        figures["arms"][arm] = {
            "held_out": final["sets"]["held-out"],
            "train": {k: final["train"][k] for k in ("reward", "groups_with_reward_variance", "seconds_per_step")},
            "placement": run_credit_placement(run),
            "steps": final["steps_run"],
        }
    figures["intervals"] = demo_intervals(out)
    return figures


#: Held-out figures with intervals: (name, per-trace value, aggregate) — ratio of sums for shares.
_INTERVAL_FIGURES = ("accuracy", "mean_cot_tokens", "irrelevant_share")


def demo_intervals(out: Path, *, draws: int = 2000, seed: int = 0) -> dict:
    """95 % intervals over held-out problems (bootstrap, problems resampled): each arm's
    figure and the paired difference dca - grpo, from each run's ``eval/held-out.measures.jsonl``."""
    rows = {arm: {r["problem_id"]: r for r in read_rows(out / "runs" / arm / "seed-0" / "eval" / "held-out.measures.jsonl")} for arm in ARMS}
    problems = sorted(set.intersection(*(set(r) for r in rows.values())))
    columns = {
        arm: {
            "correct": np.array([float(rows[arm][p]["correct"]) for p in problems]),
            "cot": np.array([float(rows[arm][p]["cot_tokens"]) for p in problems]),
            "irrelevant": np.array([float(rows[arm][p]["irrelevant_tokens"]) for p in problems]),
            "labelled": np.array([float(rows[arm][p]["labelled_tokens"]) for p in problems]),
        }
        for arm in ARMS
    }

    def figure(c: dict, index) -> dict[str, float]:
        labelled = c["labelled"][index].sum()
        return {
            "accuracy": c["correct"][index].mean(),
            "mean_cot_tokens": c["cot"][index].mean(),
            "irrelevant_share": c["irrelevant"][index].sum() / labelled if labelled else float("nan"),
        }

    rng = np.random.default_rng(seed)
    samples = [rng.integers(0, len(problems), len(problems)) for _ in range(draws)]
    everything = np.arange(len(problems))
    result: dict = {"problems": len(problems), "draws": draws}
    for name in _INTERVAL_FIGURES:
        entry = {}
        for arm in ARMS:
            values = [figure(columns[arm], s)[name] for s in samples]
            entry[arm] = {"value": float(figure(columns[arm], everything)[name]), "low": float(np.nanpercentile(values, 2.5)), "high": float(np.nanpercentile(values, 97.5))}
        diffs = [figure(columns["dca"], s)[name] - figure(columns["grpo"], s)[name] for s in samples]
        point = figure(columns["dca"], everything)[name] - figure(columns["grpo"], everything)[name]
        entry["dca_minus_grpo"] = {"value": float(point), "low": float(np.nanpercentile(diffs, 2.5)), "high": float(np.nanpercentile(diffs, 97.5))}
        result[name] = entry
    return result


def write_viewer(out: Path, arm: str) -> Path:
    """The viewer page of an arm's training traces (reviews and per-unit credit)."""
    run = out / "runs" / arm / "seed-0"
    page = render_report(collect_inputs([str(run)]), rule="majority", limit=500, title=f"DCA demo: {arm} ({ARMS[arm]})")
    path = out / f"viewer-{arm}.html"
    write_text_atomic(path, page)
    return path


def _pct(value) -> str:
    return "–" if value is None else f"{value + 0.0:.1%}".replace("-0.0%", "0.0%")


def _num(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def print_demo(figures: dict, out: Path) -> None:
    arms = figures["arms"]
    steps = next(iter(arms.values()))["steps"]
    console = table_console(160)
    table = Table(title=f"held-out problems (greedy; units labelled by the oracle) — start model, then each arm after {steps} GRPO steps")
    table.add_column("figure")
    table.add_column("start", justify="right")
    for arm in arms:
        table.add_column(f"{arm}: {ARMS[arm]}", justify="right")
    rows = [
        ("accuracy", "accuracy", _pct),
        ("mean CoT tokens", "mean_cot_tokens", _num),
        ("tokens per insight", "tokens_per_insight", _num),
        ("irrelevant share (CoT tokens in irrelevant units)", "irrelevant_share", _pct),
    ]
    for label, key, fmt in rows:
        table.add_row(label, fmt(figures["start"][key]), *(fmt(a["held_out"][key]) for a in arms.values()))
    console.print(table)
    intervals = figures.get("intervals")
    if intervals:
        table = Table(title=f"95 % intervals over {intervals['problems']} held-out problems (bootstrap over problems, {intervals['draws']} draws)")
        table.add_column("figure")
        for arm in arms:
            table.add_column(arm, justify="right")
        table.add_column("dca - grpo (paired)", justify="right")
        for label, key, fmt in rows:
            if key in intervals:
                e = intervals[key]
                cells = [f"{fmt(e[a]['value'])} [{fmt(e[a]['low'])}, {fmt(e[a]['high'])}]" for a in arms]
                d = e["dca_minus_grpo"]
                cells.append(f"{fmt(d['value'])} [{fmt(d['low'])}, {fmt(d['high'])}]")
                table.add_row(label, *cells)
        console.print(table)

    table = Table(title="training: where the advantages landed (by the oracle's unit labels)")
    table.add_column("figure")
    for arm in arms:
        table.add_column(arm, justify="right")
    placement = [
        ("positive advantage on irrelevant units", "positive_on_irrelevant"),
        ("positive advantage on useful units", "positive_on_useful"),
        ("negative advantage on blamed units (error, failed attempt)", "negative_on_blamed"),
        ("negative advantage on useful units", "negative_on_useful"),
    ]
    for label, key in placement:
        table.add_row(label, *(_pct(a["placement"][key]) for a in arms.values()))
    table.add_row("completions with a positive / negative advantage", *(f"{a['placement']['positive_traces']} / {a['placement']['negative_traces']}" for a in arms.values()))
    table.add_row("training reward (mean over steps)", *(_num_reward(a["train"]["reward"]) for a in arms.values()))
    table.add_row("seconds per step", *(_num(a["train"]["seconds_per_step"]) for a in arms.values()))
    console.print(table)
    console.print(f"viewer pages (open in a browser): {', '.join(figures['viewer'].values())}", soft_wrap=True)  # paths whole, never folded
    console.print(f"experiment directory: {out} (dca experiment report {out} writes report.md and report.html); {figures['seconds']:.0f} s in all", soft_wrap=True)


def demo_markdown(figures: dict) -> str:
    """The held-out table of `demo.json` as Markdown (the README's demo table is this text): the
    start model and each arm, with 95 % intervals and the paired difference dca - grpo."""
    arms, intervals = figures["arms"], figures["intervals"]
    steps = next(iter(arms.values()))["steps"]
    lines = [
        f"| held-out ({intervals['problems']} problems, greedy) | start | grpo after {steps} steps | dca after {steps} steps | dca - grpo (paired) |",
        "|---|---|---|---|---|",
    ]
    for label, key, fmt in (("accuracy", "accuracy", _pct), ("mean CoT tokens", "mean_cot_tokens", _num), ("irrelevant share", "irrelevant_share", _pct)):
        e = intervals[key]
        cell = lambda v: f"{fmt(v['value'])} [{fmt(v['low'])}, {fmt(v['high'])}]"  # noqa: E731
        lines.append(f"| {label} | {fmt(figures['start'][key])} | {cell(e['grpo'])} | {cell(e['dca'])} | {cell(e['dca_minus_grpo'])} |")
    return "\n".join(lines) + "\n"


def _num_reward(rewards: list) -> str:
    values = [r for r in rewards if r is not None]
    return f"{sum(values) / len(values):.2f}" if values else "–"
