"""`dca experiment report DIR`: ``report.md`` (tables) and a self-contained ``report.html``.

Reads only what `dca experiment run` wrote (finished runs: those with ``final.json``) and
computes every interval here (`dca.experiment.stats`), so a report can be rebuilt at any time,
also from a partial experiment: missing runs are listed, never filled in.

Figures per held-out set and arm: accuracy (95 % CI over problems x seeds), the paired
difference to the baseline arm (same problems, same seeds; bootstrap CI), mean CoT tokens and
their relative paired difference, tokens per insight, irrelevant share (token share of units the
oracle labels irrelevant; the reference reviewer's on GSM8K), early-answering AOC; per arm:
training reward, groups with reward variance, seconds per step, reviews and their cost, and
reviewer agreement where the spec declares two or more reviewers. Plots: learning curves (mean
and a 95 % band over seeds), final accuracy / tokens per insight / irrelevant share with their
intervals, training reward. The HTML embeds its plots as base64 PNG and loads nothing.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..credit import POLICIES
from ..errors import UserError
from ..files import read_jsonl, read_state, read_yaml, write_text_atomic
from ..records import Problem
from .comparisons import adjust_for_multiplicity, paired_comparisons
from .measures import TraceMeasure, read_rows, run_credit_placement
from .spec import ExperimentSpec, parse_spec
from .stats import NON_INFERIORITY_MARGIN, bootstrap, mde, nanmean, per_seed_sd, ratio_of_sums, relative_difference

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


# ---------------------------------------------------------------------------------------------
# Loading


def load_experiment(root: str | Path) -> dict[str, Any]:
    root = Path(root)
    spec_file = root / "spec.yaml"
    if not spec_file.is_file():
        raise UserError(f"{root} holds no experiment (no spec.yaml); give the --out directory of `dca experiment run`")
    spec = parse_spec(read_yaml(spec_file, what="experiment spec"), where=str(spec_file))
    runs: dict[str, dict[int, dict]] = {}
    missing = []
    for arm in spec.arms:
        for seed in spec.seeds:
            path = root / "runs" / arm / f"seed-{seed}"
            if not (path / "final.json").exists():
                missing.append(f"{arm} seed {seed}")
                continue
            measures = {
                s.name: read_jsonl(path / "eval" / f"{s.name}.measures.jsonl", TraceMeasure) for s in spec.eval.sets
            }
            runs.setdefault(arm, {})[seed] = {
                "final": json.loads((path / "final.json").read_text(encoding="utf-8")),
                "measures": measures,
                "curve": read_rows(path / "curve.jsonl"),
                "metrics": read_rows(path / "metrics.jsonl"),
                "placement": run_credit_placement(path),
            }
    problem_ids = {}
    for s in spec.eval.sets:
        file = root / "eval-sets" / f"{s.name}.jsonl"
        problem_ids[s.name] = [p.id for p in read_jsonl(file, Problem)] if file.exists() else []
    experiment = read_state(root / "experiment.json")  # "running" with no live writer reads "interrupted"
    start = json.loads((root / "start" / "start.json").read_text()) if (root / "start" / "start.json").exists() else {}
    return {"root": root, "spec": spec, "runs": runs, "missing": missing, "problem_ids": problem_ids, "experiment": experiment, "start": start}


# ---------------------------------------------------------------------------------------------
# Figures


def _matrix(exp: dict, arm: str, set_name: str, seeds: list[int], value) -> np.ndarray:
    ids = exp["problem_ids"][set_name]
    column = {pid: j for j, pid in enumerate(ids)}
    m = np.full((len(seeds), len(ids)), np.nan)
    for i, seed in enumerate(seeds):
        for measure in exp["runs"][arm][seed]["measures"][set_name]:
            j = column.get(measure.problem_id)
            if j is not None:
                m[i, j] = value(measure)
    return m


def _correct(m: TraceMeasure) -> float:
    return float(m.correct)


def _tpi(m: TraceMeasure) -> float:
    return m.completion_tokens / m.useful_steps if m.useful_steps else float("nan")


def set_table(exp: dict, set_name: str) -> list[dict]:
    """One row per finished arm: figures with intervals on one held-out set."""
    spec: ExperimentSpec = exp["spec"]
    base = spec.baseline
    rows = []
    for arm, by_seed in exp["runs"].items():
        seeds = sorted(by_seed)
        acc = _matrix(exp, arm, set_name, seeds, _correct)
        cot = _matrix(exp, arm, set_name, seeds, lambda m: float(m.cot_tokens))
        row: dict[str, Any] = {
            "arm": arm,
            "seeds": len(seeds),
            "problems": int(np.isfinite(acc).sum()),
            "accuracy": bootstrap(nanmean, acc),
            "accuracy_seed_sd": per_seed_sd(acc),
            "cot_tokens": bootstrap(nanmean, cot),
            "tokens_per_insight": bootstrap(nanmean, _matrix(exp, arm, set_name, seeds, _tpi)),
            "irrelevant_share": bootstrap(
                ratio_of_sums,
                _matrix(exp, arm, set_name, seeds, lambda m: float(m.irrelevant_tokens)),
                _matrix(exp, arm, set_name, seeds, lambda m: float(m.labelled_tokens)),
            ),
            "aoc": _mean([by_seed[s]["final"]["sets"][set_name].get("early_answering_aoc") for s in seeds]),
            "reviewer": by_seed[seeds[0]]["final"]["sets"][set_name].get("reviewer"),
        }
        row["training_reviewers"] = training_reviewers(spec, arm)
        # a label-based figure measured by the reviewer that trained the arm is not independent
        row["measured_by_training_reviewer"] = row["reviewer"] in row["training_reviewers"]
        if arm != base and base in exp["runs"]:
            paired = sorted(set(seeds) & set(exp["runs"][base]))
            if paired:
                a = _matrix(exp, arm, set_name, paired, _correct)
                b = _matrix(exp, base, set_name, paired, _correct)
                row["accuracy_diff"] = bootstrap(lambda x, y: nanmean(x - y), a, b)
                row["accuracy_diff"]["mde"] = mde(row["accuracy_diff"]["se"])
                ca = _matrix(exp, arm, set_name, paired, lambda m: float(m.cot_tokens))
                cb = _matrix(exp, base, set_name, paired, lambda m: float(m.cot_tokens))
                row["cot_tokens_rel_diff"] = bootstrap(relative_difference, ca, cb)
                row["cot_tokens_rel_diff"]["mde"] = mde(row["cot_tokens_rel_diff"]["se"])
                # the hypothesis under test: reviewer credit removes irrelevant steps (share-point difference)
                row["irrelevant_share_diff"] = bootstrap(
                    lambda ia, la, ib, lb: ratio_of_sums(ia, la) - ratio_of_sums(ib, lb),
                    *(_matrix(exp, who, set_name, paired, lambda m, k=k: float(getattr(m, k))) for who in (arm, base) for k in ("irrelevant_tokens", "labelled_tokens")),
                )  # fmt: skip
                row["irrelevant_share_diff"]["mde"] = mde(row["irrelevant_share_diff"]["se"])
                row["paired_seeds"] = len(paired)
                row["paired"] = paired_comparisons(
                    lambda who, key: _matrix(exp, who, set_name, paired, lambda m, k=key: float(getattr(m, k))), arm, base
                )
        rows.append(row)
    return rows


def training_reviewers(spec: ExperimentSpec, arm: str) -> list[str]:
    """The reviewers whose labels trained (GRPO arms) or edited (SFT arms) `arm`; none for
    ``uniform`` credit, ``rft`` and other arms that read no labels."""
    a = spec.arms[arm]
    if a.method == "sft":
        return [] if a.edit == "rft" else spec.base_config(0).reviewer_names
    config = spec.arm_config(arm, 0)
    return config.reviewer_names if POLICIES[config.credit.policy].reads_labels else []


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def training_table(exp: dict) -> list[dict]:
    rows = []
    spec: ExperimentSpec = exp["spec"]
    for arm, by_seed in exp["runs"].items():
        finals = [r["final"] for r in by_seed.values()]
        trains = [f["train"] for f in finals]
        usage = [t["review_usage"] for t in trains]
        rows.append(
            {
                "arm": arm,
                "budget": spec.budget(arm),
                "steps_run": sorted({f.get("steps_run") for f in finals if f.get("steps_run") is not None}),
                "final_reward": _mean([_mean(t["reward"][-5:]) for t in trains if t["reward"]]),
                "groups_with_variance": _mean([_mean(t["groups_with_reward_variance"]) for t in trains if t["groups_with_reward_variance"]]),
                "seconds_per_step": _mean([t["seconds_per_step"] for t in trains]),
                "cpu_seconds_per_step": _mean([t.get("cpu_seconds_per_step") for t in trains]),
                "load_average": _mean([t.get("load_average") for t in trains]),
                "run_seconds": _mean([f["seconds"] for f in finals]),
                "reviews": sum(u["reviews"] for u in usage),
                "reviews_failed": sum(u["reviews_failed"] for u in usage),
                "cost_usd": sum(u["cost_usd"] for u in usage),
                "agreement": [f["agreement"] for f in finals if f.get("agreement")],
                **{
                    key: _mean([r["placement"][key] for r in by_seed.values() if r.get("placement")])
                    for key in ("positive_on_irrelevant", "negative_on_blamed", "negative_on_useful")
                },
            }
        )
    return rows


def curves(exp: dict, key: str) -> dict[str, dict[str, tuple[list[int], list[float], list[float], list[float]]]]:
    """Per set, per arm: steps, mean over seeds, and the 95 % band (mean ± 1.96 SE over seeds)."""
    out: dict[str, dict] = {}
    for arm, by_seed in exp["runs"].items():
        by_set_step: dict[tuple[str, int], list[float]] = {}
        for run in by_seed.values():
            for row in run["curve"]:
                if row.get(key) is not None:
                    by_set_step.setdefault((row["set"], row["step"]), []).append(row[key])
        for (set_name, step), values in sorted(by_set_step.items(), key=lambda kv: kv[0][1]):
            steps, means, lows, highs = out.setdefault(set_name, {}).setdefault(arm, ([], [], [], []))
            m = float(np.mean(values))
            half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else 0.0
            steps.append(step)
            means.append(m)
            lows.append(m - half)
            highs.append(m + half)
    return out


# ---------------------------------------------------------------------------------------------
# Text


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(f: dict | None, fmt) -> str:
    if not f or f.get("value") is None:
        return "–"
    if f.get("low") is None:
        return fmt(f["value"])
    return f"{fmt(f['value'])} [{fmt(f['low'])}, {fmt(f['high'])}]"


def _signed_pct(value: float) -> str:
    return f"{100 * value:+.1f}"


def set_rows(rows: list[dict], baseline: str) -> list[list[str]]:
    header = [
        "arm", "seeds", "accuracy [95% CI]", f"Δ acc vs {baseline} (points) [CI]", "CoT tokens [CI]", f"Δ CoT tokens vs {baseline} (%) [CI]",
        "tokens / insight [CI]", "irrelevant share [CI]", f"Δ irrelevant share vs {baseline} (points) [CI]", "early-answering AOC",
    ]  # fmt: skip
    table = [header]
    for r in rows:
        table.append(
            [
                r["arm"],
                str(r["seeds"]),
                _ci(r["accuracy"], _pct),
                _ci(r.get("accuracy_diff"), _signed_pct) if r["arm"] != baseline else "(baseline)",
                _ci(r["cot_tokens"], _num),
                _ci(r.get("cot_tokens_rel_diff"), _signed_pct) if r["arm"] != baseline else "(baseline)",
                _ci(r["tokens_per_insight"], _num) + (" †" if r.get("measured_by_training_reviewer") else ""),
                _ci(r["irrelevant_share"], _pct) + (" †" if r.get("measured_by_training_reviewer") else ""),
                _ci(r.get("irrelevant_share_diff"), _signed_pct) if r["arm"] != baseline else "(baseline)",
                _num(r["aoc"], 3),
            ]
        )
    return table


def training_rows(rows: list[dict]) -> list[list[str]]:
    header = [
        "arm", "method", "completions sampled", "reviews", "optimizer steps", "training reward (last 5 steps)", "groups with reward variance",
        "s / step (CPU s; load avg)", "s / run", "reviews (failed)", "review cost $",
    ]  # fmt: skip
    table = [header]
    for r in rows:
        b = r["budget"]
        table.append(
            [
                r["arm"], b["method"], str(b["completions_sampled"]), str(b["reviews"]),
                str(b["optimizer_steps"]) + ("" if r["steps_run"] in ([], [b["optimizer_steps"]]) else f" (run: {', '.join(map(str, r['steps_run']))})"),
                _num(r["final_reward"], 2), _pct(r["groups_with_variance"], 0),
                f"{_num(r['seconds_per_step'], 2)} ({_num(r['cpu_seconds_per_step'], 2)}; {_num(r['load_average'], 1)})",
                _num(r["run_seconds"], 0), f"{r['reviews']} ({r['reviews_failed']})", f"{r['cost_usd']:.4f}",
            ]
        )  # fmt: skip
    return table


def mde_lines(exp: dict, tables: dict[str, list[dict]]) -> list[str]:
    """The minimum detectable effect per set and arm (never averaged over arms): from each
    comparison's seed-level paired SE, (t_0.975 + t_0.80) x SE with n - 1 df."""
    lines = []
    for set_name, rows in tables.items():
        parts = []
        for r in rows:
            paired = r.get("paired")
            if not paired:
                continue
            acc, irr, cot = (paired[m]["mde"] for m in ("accuracy", "irrelevant_share", "cot_tokens_rel"))
            parts.append(
                f"{r['arm']} ({paired['accuracy']['n']} seeds): accuracy MDE {_points(acc)}, irrelevant-share MDE {_points(irr)}, "
                f"CoT-token MDE {'–' if cot is None else f'{100 * cot:.1f} %'}"
            )
        sds = [f"{r['arm']} {100 * r['accuracy_seed_sd']:.1f}" for r in rows if r["accuracy_seed_sd"] is not None]
        seed_sd = f"seed-to-seed SD of accuracy per arm (points): {', '.join(sds)}" if sds else "seed-to-seed SD – (one seed)"
        body = "; ".join(parts) if parts else "accuracy MDE – (needs the baseline and another arm over two or more seeds)"
        lines.append(f"**{set_name}**: {body}; {seed_sd}.")
    return lines


def _points(value: float | None) -> str:
    return "– (needs two or more seeds)" if value is None else f"{100 * value:.1f} points"


def paired_rows(rows: list[dict], baseline: str) -> list[list[str]]:
    """The seed-level paired differences to the baseline (t-intervals, raw and Holm p)."""
    header = [
        "arm", "seeds", f"Δ accuracy vs {baseline} (points) [95% t-CI]", "p (Holm)", f"non-inferior (margin {100 * NON_INFERIORITY_MARGIN:.0f} pt; lower bound)",
        "Δ irrelevant share (points) [95% t-CI]", "p (Holm)", "Δ CoT tokens (%) [95% t-CI]", "p (Holm)",
    ]  # fmt: skip
    table = [header]
    for r in rows:
        paired = r.get("paired")
        if not paired:
            continue
        mark = " †" if r.get("measured_by_training_reviewer") else ""
        acc = paired["accuracy"]
        ni = "–" if acc.get("ni_low") is None else f"{'yes' if acc['non_inferior'] else 'no'} ({100 * acc['ni_low']:+.1f})"
        table.append([
            r["arm"], str(acc["n"]), _t_ci(acc), _p(acc), ni,
            _t_ci(paired["irrelevant_share"]) + mark, _p(paired["irrelevant_share"]),
            _t_ci(paired["cot_tokens_rel"]), _p(paired["cot_tokens_rel"]),
        ])  # fmt: skip
    return table


def _t_ci(f: dict) -> str:
    if f.get("mean") is None:
        return "–"
    if f.get("low") is None:
        return f"{100 * f['mean']:+.1f}"
    return f"{100 * f['mean']:+.1f} [{100 * f['low']:+.1f}, {100 * f['high']:+.1f}]"


def _p(f: dict) -> str:
    if f.get("p") is None:
        return "–"
    return f"{f['p']:.3f} ({f['p_holm']:.3f})" if f.get("p_holm") is not None else f"{f['p']:.3f}"


def placement_rows(training: list[dict]) -> list[list[str]]:
    """Where the advantages landed, by the training reviewer's own labels: an implementation check."""
    table = [["arm", "positive adv. on irrelevant units", "negative adv. on blamed units", "negative adv. on useful units"]]
    for r in training:
        if r.get("positive_on_irrelevant") is None and r.get("negative_on_blamed") is None:
            continue
        table.append([r["arm"], _pct(r["positive_on_irrelevant"]), _pct(r["negative_on_blamed"]), _pct(r["negative_on_useful"])])
    return table


def _md_table(rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(out)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------------
# Plots


def write_plots(exp: dict, tables: dict[str, list[dict]], out_dir: Path) -> list[tuple[str, Path]]:
    import matplotlib  # heavy: matplotlib loads only when plots are written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(exp["spec"].arms)
    color = {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}
    written: list[tuple[str, Path]] = []
    set_names = [s.name for s in exp["spec"].eval.sets]

    for key, label in (("accuracy", "accuracy"), ("irrelevant_share", "irrelevant share"), ("tokens_per_insight", "tokens per insight"), ("mean_cot_tokens", "mean CoT tokens")):
        data = curves(exp, key)
        if not data:
            continue
        shown = [s for s in set_names if s in data]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.0), squeeze=False)
        for ax, set_name in zip(axes[0], shown):
            for arm, (steps, means, lows, highs) in data[set_name].items():
                ax.plot(steps, means, marker="o", ms=3, color=color[arm], label=arm)
                ax.fill_between(steps, lows, highs, color=color[arm], alpha=0.15)
            ax.set_title(set_name, fontsize=9)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(label)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{label} along training (mean and 95% band over seeds)", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"curve_{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append((f"{label} along training", path))

    for key, label, scale in (("accuracy", "accuracy", 100), ("tokens_per_insight", "tokens per insight", 1), ("irrelevant_share", "irrelevant share (%)", 100)):
        fig, axes = plt.subplots(1, len(set_names), figsize=(3.2 * len(set_names), 3.0), squeeze=False)
        for ax, set_name in zip(axes[0], set_names):
            rows = [r for r in tables[set_name] if r[key]["value"] is not None]
            xs = list(range(len(rows)))
            values = [scale * r[key]["value"] for r in rows]
            errors = [
                [scale * (r[key]["value"] - r[key]["low"]) if r[key]["low"] is not None else 0 for r in rows],
                [scale * (r[key]["high"] - r[key]["value"]) if r[key]["high"] is not None else 0 for r in rows],
            ]
            ax.bar(xs, values, yerr=errors, capsize=3, color=[color[r["arm"]] for r in rows])
            ax.set_xticks(xs, [r["arm"] for r in rows], rotation=40, ha="right", fontsize=7)
            ax.set_title(set_name, fontsize=9)
            ax.set_ylabel(label)
        fig.suptitle(f"final {label} (95% CI over problems x seeds)", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"final_{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append((f"final {label}", path))

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.0))
    for arm, by_seed in exp["runs"].items():
        for ax, key in zip(axes, ("reward", "frac_reward_zero_std")):
            per_step: dict[int, list[float]] = {}
            for run in by_seed.values():
                for m in run["metrics"]:
                    if key in m:
                        per_step.setdefault(m["step"], []).append(1 - m[key] if key == "frac_reward_zero_std" else m[key])
            if per_step:
                steps = sorted(per_step)
                ax.plot(steps, [np.mean(per_step[s]) for s in steps], color=color[arm], label=arm)
    axes[0].set_title("training reward (mean over seeds)", fontsize=9)
    axes[1].set_title("groups with reward variance", fontsize=9)
    for ax in axes:
        ax.set_xlabel("optimizer step")
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(("training reward and groups with reward variance (GRPO arms)", path))
    return written


# ---------------------------------------------------------------------------------------------
# The report


def build_report(root: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``figures.json`` and the plots into `out` (default
    ``DIR/report/``; another directory must be new, empty or an earlier report); return the figures."""
    out_dir = Path(out) if out is not None else Path(root) / "report"
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / "report.md").exists())):
        raise UserError(f"--out {out_dir} holds files that are not an experiment report (no report.md); choose a new directory")
    exp = load_experiment(root)
    spec: ExperimentSpec = exp["spec"]
    if not exp["runs"]:
        raise UserError(f"{root}: no run has finished yet; run `dca experiment run` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {s.name: set_table(exp, s.name) for s in spec.eval.sets}
    exp["comparisons"] = adjust_for_multiplicity(tables)
    training = training_table(exp)
    plots = write_plots(exp, tables, out_dir)
    figures = {"sets": tables, "training": training, "missing": exp["missing"], "mde": mde_lines(exp, tables), "comparisons": exp["comparisons"]}
    write_text_atomic(out_dir / "figures.json", json.dumps(figures, indent=2, default=str) + "\n")
    md = render_markdown(exp, tables, training, plots)
    write_text_atomic(out_dir / "report.md", md)
    write_text_atomic(out_dir / "report.html", render_html(exp, tables, training, plots))
    return figures


def _header_lines(exp: dict) -> list[str]:
    spec: ExperimentSpec = exp["spec"]
    e = exp["experiment"]
    invocations = e.get("invocations", [])
    lines = [
        f"Experiment **{spec.name}**" + (f": {spec.description}" if spec.description else ""),
        f"Arms: {', '.join(spec.arms)} (baseline {spec.baseline}); seeds: {', '.join(map(str, spec.seeds))}; "
        f"held-out sets: {', '.join(s.name for s in spec.eval.sets)}.",
        f"Status: {e.get('status', 'unknown')}; wall time over {len(invocations)} invocation(s): {e.get('wall_seconds', '–')} s.",
    ]
    if invocations:
        last = invocations[-1]
        m = last.get("machine", {})
        lines.append(f"Command: `dca {' '.join(last.get('argv', []))}`; commit {last.get('commit') or 'unknown'}; machine: {m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs, {m.get('torch_threads', '?')} torch threads, {m.get('device', '?')}.")
    if exp["missing"]:
        lines.append(f"Not finished (left out of every figure): {', '.join(exp['missing'])}.")
    start = exp["start"]
    if start:
        text = f"Start checkpoint: {start.get('model')} ({start.get('parameters', 0) / 1e6:.1f} M parameters, {start.get('body', 0) / 1e6:.2f} M outside the embedding)"
        if start.get("warmstart"):
            w = start["warmstart"]
            text += f", warm start {w['steps']} SFT steps on gold CoTs with irrelevant_rate {w['irrelevant_rate']}"
        measured = start.get("measured")
        if measured:
            text += (
                f"; on {measured['problems']} problems greedy accuracy {_pct(measured['greedy_accuracy'])}, sampled (T={measured['temperature']}) "
                f"{_pct(measured['sampled_accuracy'])}, groups of {measured['group_size']} with reward variance {_pct(measured['groups_with_reward_variance'], 0)}"
            )
        lines.append(text + ".")
    return lines


def _notes(spec: ExperimentSpec) -> list[str]:
    return [
        "Levels (first table of each set): 95 % percentile bootstrap resampling seeds and problems (2000 draws). "
        "Differences to the baseline: seed-level paired t (each seed's difference on the problems both arms answered; 95 % t-interval with n - 1 df; "
        f"two-sided p, Holm-adjusted over every comparison of the report); accuracy non-inferiority: one-sided 95 % lower bound above -{100 * NON_INFERIORITY_MARGIN:.0f} points. "
        "Minimum detectable effect per arm = (t_0.975 + t_0.80, n - 1 df) x the paired SE (two-sided 5 %, 80 % power). "
        "The bootstrap differences (first table, Δ columns) are kept for comparison with earlier reports; with few seeds they under-cover.",
        "† beside a label-based figure: measured by a reviewer that also trained (or edited) that arm, so not an independent measurement. "
        "Arms trained by a degraded reviewer (oracle-flip-R, oracle-random) are measured by the exact oracle.",
        "Tokens per insight: completion tokens / steps the reviewer labels useful (traces with at least one). Irrelevant share: share of labelled tokens in units labelled irrelevant (oracle on synthetic sets, reference reviewer on GSM8K). CoT tokens: before the answer statement.",
        "Implementation check, where the advantages landed (GRPO arms, from each run's reviews.jsonl and credits.jsonl, mean over seeds): the share of the training advantage of "
        "better-than-group completions on units the training reviewer labelled irrelevant, and the share of worse-than-group completions' penalty on units "
        "labelled error or failed_attempt / on useful units (`dca.experiment.measures.credit_placement`). Under uniform credit they are the labels' token shares.",
        "Evaluation is greedy; every number comes from the run directories under runs/.",
    ]


def render_markdown(exp: dict, tables: dict, training: list[dict], plots: list[tuple[str, Path]]) -> str:
    spec: ExperimentSpec = exp["spec"]
    parts = [f"# Experiment report: {spec.name}", "", *(f"- {line}" for line in _header_lines(exp)), ""]
    comparisons = exp.get("comparisons", 0)
    for set_name, rows in tables.items():
        parts += [f"## {set_name}", "", _md_table(set_rows(rows, spec.baseline)), ""]
        paired = paired_rows(rows, spec.baseline)
        if len(paired) > 1:
            parts += [f"Seed-level paired differences to {spec.baseline} (one of {comparisons} comparisons in this report; Holm-adjusted p in brackets):", "", _md_table(paired), ""]
    parts += ["## Training and compute", "", _md_table(training_rows(training)), ""]
    agreement = [(r["arm"], a) for r in training for a in r["agreement"]]
    if agreement:
        parts += ["## Reviewer agreement on each arm's final CoTs", "", _md_table([["arm", "set", "reviewers", "traces", "Krippendorff α", "Fleiss κ", "observed"]] + [
            [arm, a.get("set", ""), ", ".join(a.get("reviewers", [])), str(a.get("traces", "–")), _num(a.get("alpha"), 3), _num(a.get("kappa"), 3), _num(a.get("observed"), 3)]
            for arm, a in agreement
        ]), ""]  # fmt: skip
    parts += ["## Minimum detectable effect", "", *(f"- {line}" for line in mde_lines(exp, tables)), ""]
    placement = placement_rows(training)
    if len(placement) > 1:
        parts += ["## Implementation check: where the advantages landed", "", "Measured with the labels of the reviewer that trained each arm, so true by construction for a correct implementation; not a result.", "", _md_table(placement), ""]
    parts += ["## Plots", ""] + [f"![{title}]({path.name})" for title, path in plots] + [""]
    parts += ["## Notes", "", *(f"- {n}" for n in _notes(spec)), ""]
    return "\n".join(parts)


def render_html(exp: dict, tables: dict, training: list[dict], plots: list[tuple[str, Path]]) -> str:
    spec: ExperimentSpec = exp["spec"]
    esc = html.escape
    body = [f"<h1>Experiment report: {esc(spec.name)}</h1>", "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in _header_lines(exp)) + "</ul>"]
    for set_name, rows in tables.items():
        body += [f"<h2>{esc(set_name)}</h2>", _html_table(set_rows(rows, spec.baseline))]
        paired = paired_rows(rows, spec.baseline)
        if len(paired) > 1:
            body += [f"<p>Seed-level paired differences to {esc(spec.baseline)} (one of {exp.get('comparisons', 0)} comparisons; Holm-adjusted p in brackets):</p>", _html_table(paired)]
    body += ["<h2>Training and compute</h2>", _html_table(training_rows(training))]
    placement = placement_rows(training)
    if len(placement) > 1:
        body += ["<h2>Implementation check: where the advantages landed</h2>", "<p>By the training reviewer's own labels: true by construction; not a result.</p>", _html_table(placement)]
    body += ["<h2>Minimum detectable effect</h2>", "<ul>" + "".join(f"<li>{esc(line.replace('**', ''))}</li>" for line in mde_lines(exp, tables)) + "</ul>"]
    body += ["<h2>Plots</h2>"]
    for title, path in plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body.append(f"<figure><img alt=\"{esc(title)}\" src=\"data:image/png;base64,{data}\"><figcaption>{esc(title)}</figcaption></figure>")
    body += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in _notes(spec)) + "</ul>"]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}figure{margin:1em 0}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{esc(spec.name)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
