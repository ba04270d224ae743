"""A DCA training run: run directory, recording, and the loop from config to checkpoint.

A run directory holds::

    config.yaml      the exact TrainConfig that produced it
    run.json         status: running -> finished | failed (with the error)
    problems.jsonl   the training problems
    traces.jsonl     every completion sampled during training (with outcome and advantage)
    reviews.jsonl    each reviewer's analysis of each trace
    consensus.jsonl  with several reviewers: their per-unit consensus for each trace
    credits.jsonl    the per-token advantages each trace was trained with
    metrics.jsonl    TRL's per-step metrics plus DCA's credit statistics
    eval_before.jsonl / eval_after.jsonl   greedy traces on the eval problems, if any
    checkpoint/      the trained model and tokenizer
    summary.json     written last: a run without it did not finish
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

from ..credit import credit_statistics
from ..files import prepare_output_dir
from ..model import load_model, resolve_model_path, trainer_device_arguments
from ..domains.sources import load_problems  # noqa: F401 (re-exported: one home for problem sources)
from ..prompting import chat_messages
from ..records import Consensus, Credit, Problem, Review, Trace, append_jsonl, write_jsonl
from ..review import OracleReviewer, ReferenceReviewer
from ..rollout import SamplingConfig, rollout, summarize
from .config import TrainConfig
from .warmstart import warmstart

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Inputs


def make_reviewers(config: TrainConfig) -> list:
    """The reviewers `config.reviewer` names: the oracle, the reference reviewer, or any reviewer
    from `config.reviewers_file`, run through the review runner (cache, retries, failed-review
    records; a failed review makes the trainer fall back to uniform credit for that trace)."""
    if config.reviewers_file is None:
        return [OracleReviewer() if name == "oracle" else ReferenceReviewer() for name in config.reviewer_names]
    from ..review import ReviewCache, RunnerReviewer, default_cache_path, load_reviewers

    reviewers = []
    for spec in load_reviewers(config.reviewers_file, only=config.reviewer_names):
        if spec.is_llm:
            reviewers.append(RunnerReviewer(spec, cache=ReviewCache(default_cache_path())))
        else:
            reviewer = OracleReviewer() if spec.backend == "oracle" else ReferenceReviewer()
            reviewer.name = spec.name
            reviewers.append(reviewer)
    return reviewers


# ---------------------------------------------------------------------------------------------
# Run directory


class RunDirectory:
    """Owns one run's output folder; refuses to mix runs or to look finished when it is not."""

    def __init__(self, path: str | Path, *, overwrite: bool = False):
        self.path = prepare_output_dir(path, overwrite=overwrite, marker="run.json", kind="a DCA run")

    def file(self, name: str) -> Path:
        return self.path / name

    def start(self, config: TrainConfig) -> None:
        self.file("config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        self._status("running")

    def finish(self, summary: dict) -> None:
        write_json(self.file("summary.json"), summary)
        self._status("finished")

    def fail(self, error: BaseException) -> None:
        self._status("failed", error=f"{type(error).__name__}: {error}")

    def _status(self, status: str, **extra) -> None:
        write_json(self.file("run.json"), {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra})


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class RunRecorder:
    """Appends each generation batch's traces, reviews and credits to the run directory."""

    def __init__(self, run: RunDirectory):
        self.run = run
        self.traces: list[Trace] = []
        self.credits: list[Credit] = []
        self.reviews_failed = 0

    def record(
        self, *, step: int, traces: list[Trace], reviews: list[Review], credits: list[Credit], consensuses: list[Consensus]
    ) -> None:
        append_jsonl(self.run.file("traces.jsonl"), traces)
        append_jsonl(self.run.file("reviews.jsonl"), reviews)
        append_jsonl(self.run.file("credits.jsonl"), credits)
        if consensuses:  # several reviewers: the merged analysis each credit came from
            append_jsonl(self.run.file("consensus.jsonl"), consensuses)
        self.traces.extend(traces)
        self.credits.extend(credits)
        self.reviews_failed += sum(r.status != "ok" for r in reviews)


def group_variance_fraction(traces: list[Trace]) -> float:
    """Share of GRPO groups whose rewards are not all equal (only those carry advantage)."""
    groups: dict[str, set[float]] = defaultdict(set)
    for trace in traces:
        groups[trace.group or trace.id].add(trace.reward)
    return sum(len(r) > 1 for r in groups.values()) / len(groups) if groups else 0.0


def credit_figures(credits: list[Credit]) -> dict[str, float]:
    """`credit_statistics` over a whole run, plus the checks the summary reports: how many
    tokens carry a non-zero advantage, and the largest conservation error of `conserve`."""
    stats = credit_statistics(credits)
    conserve = [c for c in credits if c.policy == "conserve"]
    return {
        "credits": int(stats["traces"]),
        "tokens": int(stats["tokens"]),
        "nonzero_advantage_tokens": sum(1 for c in credits for a in c.token_advantages if a != 0.0),
        "credited_fraction": stats["fraction_credited"],
        "fallbacks": int(stats["fallbacks"]),
        "conserve_max_abs_error": max((abs(sum(c.token_advantages) - c.uniform_sum) for c in conserve), default=0.0),
    }


# ---------------------------------------------------------------------------------------------
# The loop


def evaluate(model, tokenizer, problems: list[Problem], *, max_new_tokens: int, path: Path | None = None) -> dict:
    """Greedy accuracy on `problems`; traces are written to `path` when given."""
    traces = rollout(model, tokenizer, problems, SamplingConfig(max_new_tokens=max_new_tokens, batch_size=16))
    if path is not None:
        write_jsonl(path, traces)
    return summarize(traces)


def run_training(config: TrainConfig, out: str | Path, *, overwrite: bool = False, log: Log = print) -> tuple[dict, RunDirectory]:
    """Train with DCA-GRPO as `config` says, writing everything into the run directory `out`.

    Bad input (problems, model, output directory) raises UserError before anything is written.
    """
    problems = load_problems(config.problems)
    eval_problems = load_problems(config.eval_problems) if config.eval_problems else []
    resolve_model_path(config.model)
    if config.reviewers_file is not None:  # a wrong reviewers file or name fails before the run starts
        from ..review import load_reviewers

        load_reviewers(config.reviewers_file, only=config.reviewer_names)
    run = RunDirectory(out, overwrite=overwrite)
    run.start(config)
    try:
        summary = _train(config, run, problems, eval_problems, log)
    except BaseException as e:
        run.fail(e)
        raise
    run.finish(summary)
    return summary, run


def _train(config: TrainConfig, run: RunDirectory, problems, eval_problems, log: Log) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig

    from .grpo_trainer import DCAGRPOTrainer, domain_reward

    started = time.time()
    write_jsonl(run.file("problems.jsonl"), problems)
    model_path = config.model
    if config.warmstart is not None:
        model_path = str(warmstart(config.model, config.warmstart, log=log))
    model, tokenizer = load_model(model_path)
    g = config.grpo
    summary: dict = {"model": config.model, "start_checkpoint": model_path, "steps": g.steps}

    if eval_problems:
        log(f"evaluating the start model on {len(eval_problems)} held-out problems (greedy)")
        summary["eval_before"] = evaluate(model, tokenizer, eval_problems, max_new_tokens=g.max_completion_length, path=run.file("eval_before.jsonl"))
        log(f"  accuracy {summary['eval_before']['accuracy']:.1%}, format failures {summary['eval_before']['format_failures']:.1%}")

    dataset = Dataset.from_list([{"prompt": chat_messages(p), "answer": p.answer, "problem_id": p.id} for p in problems])
    args = GRPOConfig(
        output_dir=str(run.file("trainer")),
        max_steps=g.steps,
        learning_rate=g.learning_rate,
        per_device_train_batch_size=g.num_generations * g.prompts_per_step,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=config.seed,
        **trainer_device_arguments(),
    )
    recorder = RunRecorder(run)
    metrics_file = run.file("metrics.jsonl")

    class _Metrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            append_jsonl(metrics_file, [{"step": state.global_step, **logs}])
            log(
                f"step {state.global_step}/{g.steps}  reward {logs.get('reward', 0):.2f}  "
                f"groups with zero std {logs.get('frac_reward_zero_std', 0):.0%}  "
                f"credited {logs.get('dca/fraction_credited', 0):.0%}  loss {logs['loss']:.4f}"
            )

    reviewers = make_reviewers(config)
    trainer = DCAGRPOTrainer(
        model=model,
        reward_funcs=[domain_reward({p.id: p for p in problems})],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[_Metrics()],
        reviewer=reviewers,
        problems={p.id: p for p in problems},
        credit_config=config.credit.to_credit_config(),
        consensus_rule=config.consensus_rule,
        recorder=recorder,
    )
    trainer.remove_callback(PrinterCallback)  # _Metrics prints a shorter line
    log(f"DCA-GRPO: {g.steps} steps, {g.prompts_per_step} prompt(s) x {g.num_generations} completions, credit '{config.credit.policy}'")
    try:
        trainer.train()
    finally:
        for reviewer in reviewers:
            if hasattr(reviewer, "close"):
                reviewer.close()
    shutil.rmtree(run.file("trainer"), ignore_errors=True)
    model.config.use_cache = True  # TRL turns it off for training; generation wants it back
    trainer.save_model(str(run.file("checkpoint")))
    tokenizer.save_pretrained(run.file("checkpoint"))

    if eval_problems:
        summary["eval_after"] = evaluate(model, tokenizer, eval_problems, max_new_tokens=g.max_completion_length, path=run.file("eval_after.jsonl"))
        log(f"after training: accuracy {summary['eval_after']['accuracy']:.1%}")
    summary["train"] = {
        **summarize(recorder.traces),
        "groups_with_reward_variance": group_variance_fraction(recorder.traces),
        "reviews_failed": recorder.reviews_failed,
        **credit_figures(recorder.credits),
    }
    summary["seconds"] = round(time.time() - started, 1)
    return summary
