"""`dca experiment run SPEC --out DIR`: every arm x seed of a spec from one start checkpoint.

The experiment directory::

    spec.yaml                  the validated spec that produced it
    experiment.json            status, command, commit, machine, wall time
    start/start.json           the shared start checkpoint and what it measured (testbed figures)
    start/curve.jsonl          the start model on the curve sets: every run's step 0
    eval-sets/<name>.jsonl     the held-out problems, written once
    rollouts/seed-<s>/         the start model's rollouts shared by the SFT arms of seed s
    runs/<arm>/seed-<s>/       one ordinary run directory per arm and seed (`dca.train.run_directory`)

Each run directory holds, besides what `dca train` writes (or, for SFT arms, ``config.yaml``,
``run.json``, ``traces.jsonl``, ``reviews.jsonl``, ``edits.jsonl``, ``metrics.jsonl``,
``checkpoint/``, ``summary.json``):

- ``curve.jsonl``: the along-training evaluation every ``eval.every`` steps (step 0 = the start
  model, evaluated once for all runs in ``start/curve.jsonl``), per set: accuracy, mean CoT
  tokens, tokens per insight, irrelevant share, failed reviews (`CURVE_FIGURES` of
  `dca.evaluate.evaluate_problems`, the evaluation ``dca eval`` runs) and failed items;
- ``steps.jsonl``: wall seconds of each optimizer step (evaluations excluded);
- ``eval/``: `dca eval` of the final checkpoint (traces, reviews, faithfulness probes) and per
  set ``<set>.measures.jsonl`` (`dca.experiment.measures.TraceMeasure`);
- ``final.json``: written last; a run without it is not finished. Then ``checkpoint/`` and
  ``trainer/`` are removed (nothing later reads them) unless the spec says
  ``keep_checkpoints: true``.

Resuming: a run with ``final.json`` is skipped; one whose training finished (``summary.json``)
but not its final evaluation only repeats the evaluation; an interrupted GRPO run that saved
TRL checkpoints (the arm's ``trl: {save_steps: N}``) continues from the last one (`dca train
--resume`: later steps' records dropped, then replayed); any other started run is restarted
from the start checkpoint (its directory replaced).

Departure: the SFT arms draw their rollouts on the training problems in the order TRL's
`RepeatSampler` draws them for a GRPO run of the same seed (``torch.randperm`` seeded with the
seed, epoch after epoch); this replicates TRL's sampler, it does not call it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from ..agreement import agreement_report
from ..consensus import build_consensuses
from ..domains.sources import load_problems
from ..edit import EditConfig, edit_traces
from ..errors import UserError
from ..evaluate import EvalConfig, evaluate_problems, run_eval
from ..files import (
    append_jsonl, check_unlocked, lock_dir, prepare_output_dir, read_jsonl, unlock_dir, write_json, write_jsonl, write_run_state, write_text_atomic,
)
from ..measures import token_counter
from ..model import SamplingConfig, load_model, load_tokenizer
from ..records import Consensus, Problem, Review, Trace, to_dict
from ..review import close_reviewers, review_traces, reviewer_for
from ..rollout import rollout
from ..train.config import TrainConfig
from ..train.resume import last_checkpoint
from ..train.run import group_variance_fraction, make_reviewers, run_training
from ..train.sft import SFTSettings, run_sft
from ..train.warmstart import warmstart_key
from .measures import read_rows, trace_measures
from .spec import ExperimentSpec
from .testbed import measure_start, prepare_start

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Layout


@dataclass(kw_only=True)
class RunKey:
    arm: str
    seed: int

    def path(self, root: Path) -> Path:
        return root / "runs" / self.arm / f"seed-{self.seed}"

    def label(self) -> str:
        return f"{self.arm} seed {self.seed}"


def run_state(path: Path) -> str:
    """``finished`` (final.json), ``trained`` (summary.json only), ``started`` or ``new``."""
    if (path / "final.json").exists():
        return "finished"
    if (path / "summary.json").exists() and (path / "checkpoint" / "config.json").exists():
        return "trained"
    return "started" if path.exists() else "new"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    import torch  # heavy: torch loads only when a run records its machine

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def training_order(n_problems: int, seed: int, count: int) -> list[int]:
    """Problem indices in the order TRL's RepeatSampler (shuffle, seed) draws prompts."""
    import torch  # heavy: torch loads only when training runs

    generator = torch.Generator()
    generator.manual_seed(seed)
    order: list[int] = []
    while len(order) < count:
        order += torch.randperm(n_problems, generator=generator).tolist()
    return order[:count]


# ---------------------------------------------------------------------------------------------
# Evaluation along training and at the end


#: The `dca.evaluate.set_figures` figures a curve row and a run's final figures per set keep.
CURVE_FIGURES = ("traces", "accuracy", "mean_cot_tokens", "tokens_per_insight", "irrelevant_share", "reviews_failed")


class _Evaluator:
    """Greedy evaluation on the held-out sets (`dca.evaluate.evaluate_problems`, each set
    reviewed by its ``auto`` reviewer)."""

    def __init__(self, sets: dict[str, list[Problem]], *, max_new_tokens: int):
        self.sets = sets
        self.max_new_tokens = max_new_tokens
        self.reviewers = {name: reviewer_for("auto", problems) for name, problems in sets.items()}

    def curve_rows(self, model, tokenizer, step: int, limit: int) -> list[dict]:
        sampling = SamplingConfig(max_new_tokens=self.max_new_tokens, batch_size=16)
        rows = []
        for name, problems in self.sets.items():
            started = time.time()
            result = evaluate_problems(name, problems[:limit], model, tokenizer, sampling, reviewer=self.reviewers[name])
            figures = {key: result.figures[key] for key in CURVE_FIGURES}
            rows.append({"step": step, "set": name, **figures, "failed_items": len(result.failures), "seconds": round(time.time() - started, 2)})
        return rows


def _log_curve(rows: list[dict], log: Log) -> None:
    step = rows[0]["step"] if rows else 0
    log("  eval @ step {}: ".format(step) + ", ".join(f"{r['set']} {r['accuracy']:.0%}" for r in rows if r["accuracy"] is not None))


def start_curve(evaluator: _Evaluator, start: str, limit: int, start_dir: Path, log: Log) -> list[dict]:
    """The step-0 rows of every run's curve: the start model is the same for every arm and
    seed (and greedy decoding is deterministic), so it is evaluated once, in
    ``start/curve.jsonl``."""
    path = start_dir / "curve.jsonl"
    if path.exists():
        return read_rows(path)
    model, tokenizer = load_model(start)
    rows = evaluator.curve_rows(model, tokenizer, 0, limit)
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    _log_curve(rows, log)
    return rows


def _curve_callback(evaluator: _Evaluator, tokenizer, every: int, limit: int, run_dir: Path, log: Log, *, before: list[dict]):
    """`before`: the start model's rows (`start_curve`), written as the run's step 0."""
    from transformers import TrainerCallback  # heavy: transformers loads only when training runs

    def write(rows: list[dict]) -> None:
        with (run_dir / "curve.jsonl").open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")

    class CurveCallback(TrainerCallback):
        """Evaluates every `every` steps (step 0: the shared start rows), and times each step."""

        def __init__(self):
            self.step_started = None

        def _evaluate(self, model, step: int) -> None:
            use_cache, training = model.config.use_cache, model.training
            model.config.use_cache = True
            try:
                rows = evaluator.curve_rows(model, tokenizer, step, limit)
            finally:
                model.config.use_cache = use_cache
                model.train(training)
            write(rows)
            _log_curve(rows, log)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:  # a resumed run has its earlier rows
                write(before)

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = (time.time(), time.process_time())

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if self.step_started is not None:
                wall, cpu = self.step_started
                row = {
                    "step": state.global_step,
                    "seconds": round(time.time() - wall, 3),
                    "cpu_seconds": round(time.process_time() - cpu, 3),  # all threads: the work, whatever else loads the machine
                    "load_average": round(os.getloadavg()[0], 2),
                }
                with (run_dir / "steps.jsonl").open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            if every and state.global_step % every == 0 and state.global_step < state.max_steps:
                self._evaluate(model, state.global_step)

    return CurveCallback()


def final_evaluation(spec: ExperimentSpec, root: Path, run_dir: Path, evaluator: _Evaluator, log: Log) -> dict:
    """`dca eval` on the run's checkpoint (sets, probes) plus per-trace measures and agreement."""
    checkpoint = run_dir / "checkpoint"
    partial = run_dir / "eval"
    if partial.is_dir() and not (partial / "eval.json").exists():  # an interrupted evaluation of ours
        shutil.rmtree(partial)
    model, tokenizer = load_model(str(checkpoint))
    config = EvalConfig(
        model=str(checkpoint),
        sets=[str(root / "eval-sets" / f"{name}.jsonl") for name in evaluator.sets],
        probes=list(spec.eval.probes),
        probe_sets=spec.eval.probe_sets,
        probe_limit=spec.eval.probe_limit,
        sampling=SamplingConfig(max_new_tokens=spec.eval.max_new_tokens, batch_size=16),
    )
    report = run_eval(config, run_dir / "eval", model=model, tokenizer=tokenizer, overwrite=True, log=lambda m: log("  " + m))

    count = token_counter(tokenizer)

    sets = {}
    for name in evaluator.sets:
        traces = read_jsonl(run_dir / "eval" / f"{name}.traces.jsonl", Trace)
        reviews = read_jsonl(run_dir / "eval" / f"{name}.reviews.jsonl", Review)
        write_jsonl(run_dir / "eval" / f"{name}.measures.jsonl", trace_measures(traces, reviews, count))
        result = report["results"][name]
        early = (result.get("faithfulness") or {}).get("early") or {}
        sets[name] = {
            **{key: result[key] for key in CURVE_FIGURES},
            "reviewer": result.get("reviewer"),
            "early_answering_aoc": (early.get("aoc") or {}).get("weighted"),
        }
    final = {"sets": sets, "eval_failures": len(report["failures"])}
    if spec.eval.agreement_reviewers:
        final["agreement"] = reviewer_agreement(spec, root, run_dir, evaluator)
    return final


def reviewer_agreement(spec: ExperimentSpec, root: Path, run_dir: Path, evaluator: _Evaluator) -> dict:
    """Agreement of the declared reviewers on the final CoTs of the first eval set."""
    name = next(iter(evaluator.sets))
    problems = {p.id: p for p in evaluator.sets[name]}
    traces = read_jsonl(run_dir / "eval" / f"{name}.traces.jsonl", Trace)
    config = TrainConfig.model_validate({**spec.base_config(0).model_dump(), "reviewer": spec.eval.agreement_reviewers})
    reviewers = make_reviewers(config)
    try:
        reviews = review_traces(reviewers, traces, problems)
    finally:
        close_reviewers(reviewers)
    write_jsonl(run_dir / "eval" / f"{name}.agreement-reviews.jsonl", reviews)
    try:
        report = agreement_report(reviews, traces=traces)
    except ValueError as e:
        return {"set": name, "error": str(e)}
    labels = report["labels"]
    return {"set": name, "reviewers": spec.eval.agreement_reviewers, "traces": labels["traces"], "alpha": labels["alpha"], "kappa": labels["kappa"], "observed": labels["observed"]}


# ---------------------------------------------------------------------------------------------
# One run


def _review_usage(reviews: list[Review]) -> dict:
    return {
        "reviews": len(reviews),
        "reviews_failed": sum(r.status != "ok" for r in reviews),
        "cost_usd": round(sum(float(r.usage.get("cost_usd", 0.0)) for r in reviews), 6),
        "input_tokens": int(sum(r.usage.get("input_tokens", 0) for r in reviews)),
        "output_tokens": int(sum(r.usage.get("output_tokens", 0) for r in reviews)),
    }


def _train_figures(run_dir: Path) -> dict:
    """Training reward, groups with reward variance and seconds per step from the run's files."""
    metrics = read_rows(run_dir / "metrics.jsonl")
    steps = read_rows(run_dir / "steps.jsonl")
    reviews = read_jsonl(run_dir / "reviews.jsonl", Review) if (run_dir / "reviews.jsonl").exists() else []
    seconds = [s["seconds"] for s in steps]
    cpu = [s["cpu_seconds"] for s in steps if "cpu_seconds" in s]
    load = [s["load_average"] for s in steps if "load_average" in s]
    return {
        "cpu_seconds_per_step": sum(cpu) / len(cpu) if cpu else None,
        "load_average": sum(load) / len(load) if load else None,
        "reward": [m.get("reward") for m in metrics if "reward" in m],
        "groups_with_reward_variance": [1 - m["frac_reward_zero_std"] for m in metrics if "frac_reward_zero_std" in m],
        "seconds_per_step": sum(seconds) / len(seconds) if seconds else None,
        "review_usage": _review_usage(reviews),
    }


def resumable_step(run_dir: Path) -> int | None:
    """The step of the last complete TRL checkpoint of an interrupted GRPO run (None: none)."""
    if not (run_dir / "run.json").exists():
        return None
    found = last_checkpoint(run_dir / "trainer")
    return found[1] if found else None


def _truncate_own_files(run_dir: Path, step: int) -> None:
    """Keep the curve and step-time rows up to `step` (a resumed run replays the steps after it)."""
    for name in ("curve.jsonl", "steps.jsonl"):
        path = run_dir / name
        if path.exists():
            rows = read_rows(path)
            kept = [r for r in rows if r["step"] <= step]
            write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def start_recipe(spec: ExperimentSpec, start: str, base: str | None) -> tuple[str, Any]:
    """(model, warm start settings or None) for a GRPO arm's config: the start's recipe, the
    base model and the warm start settings whose cached result is `start`, so that the run's
    config.yaml rebuilds it on a machine whose cache lacks it; `start` itself where the recipe
    does not lead to it (an experiment prepared with another cache key)."""
    if spec.start.warmstart is None or base is None:
        return start, None
    if Path(start).name != warmstart_key(base, spec.start.warmstart):
        return start, None
    return base, spec.start.warmstart


def run_grpo_arm(
    spec: ExperimentSpec, key: RunKey, start: str, run_dir: Path, evaluator: _Evaluator, log: Log, *, before: list[dict], resume: bool = False,
    base: str | None = None,
) -> None:
    """Train one GRPO arm; with `resume`, continue from the run's last TRL checkpoint (`dca train
    --resume`; the arm's ``trl: {save_steps: N}`` makes checkpoints)."""
    # The run's config names the start by its recipe (base model + warm start settings, cached:
    # the same checkpoint), never by its cache path: it trains as it is on another machine.
    model, recipe = start_recipe(spec, start, base)
    config = spec.arm_config(key.arm, key.seed, model=model).model_copy(update={"warmstart": recipe})
    tokenizer = load_tokenizer(start)
    if resume:
        _truncate_own_files(run_dir, resumable_step(run_dir) or 0)
    callback = _curve_callback(evaluator, tokenizer, spec.eval.every, spec.eval.curve_limit, run_dir, log, before=before)
    run_training(config, run_dir, overwrite=not resume, resume=resume, log=lambda m: log("  " + m), callbacks=[callback])


def shared_rollouts(spec: ExperimentSpec, root: Path, seed: int, start: str, log: Log) -> Path:
    """The start model's rollouts for the SFT arms of `seed`, reviewed by the base reviewer(s)."""
    target = root / "rollouts" / f"seed-{seed}"
    if (target / "done.json").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for leftover in target.iterdir():  # an interrupted attempt: start over
        leftover.unlink()
    config = spec.base_config(seed)
    g = config.grpo
    problems = load_problems(config.problems)
    order = training_order(len(problems), seed, g.steps * g.prompts_per_step)
    chosen = [problems[i] for i in order]
    started = time.time()
    log(f"  rollouts for the sft arms: {len(chosen)} prompts x {g.num_generations} completions (T={g.temperature})")
    model, tokenizer = load_model(start)
    traces: list[Trace] = []
    for k, problem in enumerate(chosen):  # one group per drawn prompt, like a GRPO step
        sampling = SamplingConfig(max_new_tokens=g.max_completion_length, temperature=g.temperature, samples_per_problem=g.num_generations, batch_size=16, seed=seed * 100003 + k)
        for trace in rollout(model, tokenizer, [problem], sampling, model_name=start):
            trace.id = f"{trace.id}/d{k}"
            trace.group = f"{trace.group}/d{k}"
            trace.step = k // g.prompts_per_step + 1
            traces.append(trace)
    reviewers = make_reviewers(config)
    try:
        reviews = review_traces(reviewers, traces, {p.id: p for p in problems})
    finally:
        close_reviewers(reviewers)
    write_jsonl(target / "problems.jsonl", problems)
    write_jsonl(target / "traces.jsonl", traces)
    write_jsonl(target / "reviews.jsonl", reviews)
    if len(config.reviewer_names) > 1:
        write_jsonl(target / "consensus.jsonl", build_consensuses(reviews, rule=config.consensus_rule))
    write_json(target / "done.json", {"traces": len(traces), "seconds": round(time.time() - started, 1)})
    return target


def run_sft_arm(spec: ExperimentSpec, root: Path, key: RunKey, start: str, run_dir: Path, evaluator: _Evaluator, log: Log, *, before: list[dict]) -> None:
    arm = spec.arms[key.arm]
    config = spec.base_config(key.seed)
    g = config.grpo
    started = time.time()
    prepare_output_dir(run_dir, overwrite=True, marker="run.json", kind="a DCA run")
    settings = SFTSettings(
        max_steps=g.steps,
        batch_size=g.prompts_per_step * g.num_generations,
        learning_rate=arm.sft_learning_rate or g.learning_rate * 10,
        max_length=1024,
        seed=key.seed,
    )
    run_config = {"method": "sft", "arm": key.arm, "start": start, "edit": arm.edit, "edit_mode": arm.edit_mode, "sft": settings.__dict__, "base": config.model_dump(mode="json")}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False), encoding="utf-8")
    write_run_state(run_dir / "run.json", {"status": "running", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    try:
        source = shared_rollouts(spec, root, key.seed, start, log)
        # rft trains on the unedited solved traces: the reviews are the edit arms' cost, not its own
        names = ("problems.jsonl", "traces.jsonl") if arm.edit == "rft" else ("problems.jsonl", "traces.jsonl", "reviews.jsonl", "consensus.jsonl")
        for name in names:
            if (source / name).exists():
                shutil.copyfile(source / name, run_dir / name)
        traces = read_jsonl(source / "traces.jsonl", Trace)
        problems = {p.id: p for p in read_jsonl(source / "problems.jsonl", Problem)}
        if (source / "consensus.jsonl").exists():
            labels = {c.trace_id: c for c in read_jsonl(source / "consensus.jsonl", Consensus)}
        else:
            labels = {r.trace_id: r for r in read_jsonl(source / "reviews.jsonl", Review)}
        tokenizer = load_tokenizer(start)

        count = token_counter(tokenizer)

        edits = edit_traces(traces, problems, labels, EditConfig(arm=arm.edit, mode="drop" if arm.edit == "rft" else arm.edit_mode, seed=key.seed), count_tokens=count)
        write_jsonl(run_dir / "edits.jsonl", edits)
        trained_on = sum(e.status != "skipped" for e in edits)
        log(f"  {arm.edit}: {trained_on} of {len(traces)} rollouts trained on")
        if trained_on:
            callback = _curve_callback(evaluator, tokenizer, spec.eval.every, spec.eval.curve_limit, run_dir, log, before=before)
            sft = run_sft(edits, start, run_dir / "checkpoint", settings, edits_path=str(run_dir / "edits.jsonl"), log=lambda m: log("  " + m), callbacks=[callback])
            append_jsonl(run_dir / "metrics.jsonl", sft["losses"])
        else:  # nothing solved: nothing to fine-tune on, so the arm's model is the start model (0 steps)
            log(f"  no rollout of the start model was solved: {key.arm} trains 0 steps and keeps the start checkpoint")
            (run_dir / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in before), encoding="utf-8")
            shutil.copytree(start, run_dir / "checkpoint", ignore=shutil.ignore_patterns("trainer", "*.partial"))
            sft = {"edit_figures": None, "losses": []}
        summary = {
            "method": "sft",
            "edit": arm.edit,
            "start_checkpoint": start,
            "steps": g.steps if trained_on else 0,
            "train": {
                "traces": len(traces),
                "accuracy": sum(t.outcome == "correct" for t in traces) / len(traces),
                "groups_with_reward_variance": group_variance_fraction(traces),
                "trained_on": trained_on,
                "edit_figures": sft["edit_figures"],
            },
            "seconds": round(time.time() - started, 1),
        }
        write_json(run_dir / "summary.json", summary)
        write_run_state(run_dir / "run.json", {"status": "finished", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except BaseException as e:
        write_run_state(run_dir / "run.json", {"status": "failed", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "error": f"{type(e).__name__}: {e}"})
        raise


# ---------------------------------------------------------------------------------------------
# The experiment


def select_runs(spec: ExperimentSpec, *, only: list[str] | None = None, seeds: list[int] | None = None) -> list[RunKey]:
    arms = list(spec.arms)
    if only:
        unknown = [a for a in only if a not in spec.arms]
        if unknown:
            raise UserError(f"--only {unknown[0]}: no such arm; the spec's arms are {', '.join(arms)}")
        arms = [a for a in arms if a in only]
    chosen = spec.seeds
    if seeds is not None:
        unknown = [s for s in seeds if s not in spec.seeds]
        if unknown:
            raise UserError(f"--seeds {unknown[0]}: not a seed of the spec ({', '.join(map(str, spec.seeds))})")
        chosen = [s for s in spec.seeds if s in seeds]
    return [RunKey(arm=a, seed=s) for s in chosen for a in arms]


def prepare_experiment_dir(spec: ExperimentSpec, out: Path) -> None:
    """Create `out`, or check that an existing one belongs to the same spec, and lock it for
    this process (`dca.files.lock_dir`: a second ``experiment run`` on the same directory is
    refused, naming the holder's pid; the caller unlocks)."""
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    spec_file = out / "spec.yaml"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        check_unlocked(out)  # before reading anything another run may be writing
        if not spec_file.exists():
            raise UserError(f"--out {out} is not empty and holds no experiment; choose a new directory")
        if spec_file.read_text(encoding="utf-8") != text:
            raise UserError(f"--out {out} holds an experiment with a different spec; choose a new directory (a changed spec would mix results)")
        lock_dir(out)
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock_dir(out)
        spec_file.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write to --out {out}: {e.strerror or e}") from e


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_experiment(
    spec: ExperimentSpec, out: str | Path, *, only: list[str] | None = None, seeds: list[int] | None = None, log: Log = print
) -> dict:
    """Run (or resume) the selected runs of `spec` in `out`; returns experiment.json's content."""
    root = Path(out)
    keys = select_runs(spec, only=only, seeds=seeds)
    sets = {s.name: load_problems(s.problems) for s in spec.eval.sets}
    prepare_experiment_dir(spec, root)
    try:
        return _run_locked(spec, root, keys, sets, log)
    finally:
        unlock_dir(root)


def _run_locked(spec: ExperimentSpec, root: Path, keys: list[RunKey], sets: dict[str, list[Problem]], log: Log) -> dict:
    """`run_experiment` once its directory is prepared and locked."""
    status_file = root / "experiment.json"
    record = json.loads(status_file.read_text()) if status_file.exists() else {"invocations": []}
    invocation = {"argv": sys.argv[1:], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": git_commit(), "machine": machine(), "load_average_start": os.getloadavg()[0]}
    record["invocations"].append(invocation)
    record["status"] = "running"
    write_json(status_file, record)
    wall = time.time()
    try:
        (root / "eval-sets").mkdir(exist_ok=True)
        for name, problems in sets.items():
            if not (root / "eval-sets" / f"{name}.jsonl").exists():
                write_jsonl(root / "eval-sets" / f"{name}.jsonl", problems)
        start, start_record = prepare_start(spec, root / "start", log=log)
        if "measured" not in start_record and spec.start.measure:
            g = spec.base_config(0).grpo
            first = next(iter(sets.values()))
            start_record["measured"] = measure_start(
                start, first[: spec.start.measure], temperature=g.temperature, group_size=g.num_generations,
                max_new_tokens=g.max_completion_length, out_dir=root / "start", log=log,
            )  # fmt: skip
        write_json(root / "start" / "start.json", start_record)
        evaluator = _Evaluator(sets, max_new_tokens=spec.eval.max_new_tokens)
        before: list[dict] | None = None
        durations: dict[str, list[float]] = {}
        for n, key in enumerate(keys, 1):
            path = key.path(root)
            state = run_state(path)
            prefix = f"[{n}/{len(keys)}] {key.label()}"
            if state == "finished":
                log(f"{prefix}: finished earlier, skipped")
                continue
            method = spec.arms[key.arm].method
            started = time.time()
            if state != "trained" and before is None:
                before = start_curve(evaluator, start, spec.eval.curve_limit, root / "start", log)
            if state != "trained":
                resume_at = resumable_step(path) if state == "started" and method == "grpo" else None
                if resume_at is not None:
                    log(f"{prefix}: resuming an interrupted run from its checkpoint at step {resume_at} -> {path}")
                else:
                    log(f"{prefix}: {'restarting an interrupted run' if state == 'started' else 'starting'} -> {path}")
                if method == "grpo":
                    run_grpo_arm(spec, key, start, path, evaluator, log, before=before, resume=resume_at is not None, base=start_record.get("base"))
                else:
                    run_sft_arm(spec, root, key, start, path, evaluator, log, before=before)
            else:
                log(f"{prefix}: training finished earlier; final evaluation")
            final = final_evaluation(spec, root, path, evaluator, log)
            summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
            final.update(arm=key.arm, seed=key.seed, method=method, budget=spec.budget(key.arm), steps_run=summary.get("steps"), train=_train_figures(path))
            final["seconds"] = round(time.time() - started, 1)
            write_json(path / "final.json", final)
            if not spec.keep_checkpoints:  # the final evaluation was their last reader
                for folder in ("checkpoint", "trainer"):
                    shutil.rmtree(path / folder, ignore_errors=True)
            durations.setdefault(method, []).append(final["seconds"])
            left = [k for k in keys[n:] if run_state(k.path(root)) != "finished"]
            every = [d for ds in durations.values() for d in ds]
            eta = sum(
                (sum(durations[spec.arms[k.arm].method]) / len(durations[spec.arms[k.arm].method])) if spec.arms[k.arm].method in durations else sum(every) / len(every)
                for k in left
            )
            first = next(iter(final["sets"].values()))
            log(
                f"{prefix}: done in {_duration(final['seconds'])} ({next(iter(final['sets']))} accuracy {first['accuracy']:.1%}); "
                f"{len(left)} run(s) left, ETA {_duration(eta) if left else '0 s'}"
            )
    except BaseException as e:
        record["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        invocation["error"] = f"{type(e).__name__}: {e}"
        invocation["seconds"] = round(time.time() - wall, 1)
        write_json(status_file, record)
        raise
    invocation["seconds"] = round(time.time() - wall, 1)
    invocation["load_average_end"] = os.getloadavg()[0]
    all_keys = select_runs(spec)
    record["status"] = "finished" if all(run_state(k.path(root)) == "finished" for k in all_keys) else "partial"
    record["wall_seconds"] = round(sum(i.get("seconds", 0) for i in record["invocations"]), 1)
    write_json(status_file, record)
    return record


__all__ = ["RunKey", "run_experiment", "run_state", "select_runs", "training_order", "to_dict"]
