"""A DCA training run, as a story: from a `TrainConfig` to a trained checkpoint and its summary.

`run_training` checks the inputs (problems, reward, reviewers) before anything is written,
opens the run directory, evaluates the start model on the held-out problems, builds the
reviewers and the `DCAGRPOTrainer`, trains (each generation batch is reviewed, credited per
token and recorded), saves the checkpoint, evaluates again and sums the run up. Where its
records go, how the folder is locked, resumed and marked finished is `dca.train.run_directory`.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path

from ..caveats import format_failure_warning, warn, zero_variance_warning
from ..continuation import HFContinuationEngine
from ..credit import credit_statistics
from ..domains import chat_messages, domain_of
from ..domains.judge import Judge, use_judge
from ..domains.sources import load_problems
from ..durable import OutputFailure, environment_failure
from ..errors import UserError
from ..evaluate import evaluate_problems
from ..files import append_jsonl, write_jsonl
from ..model import SamplingConfig, load_model, resolve_model_path, trainer_device_arguments
from ..records import Credit, Problem, Trace, from_dict
from ..review import BuildContext, ReviewCache, build_reviewers, builtin_spec, close_reviewers, default_cache_path, load_reviewers
from ..review.batch import summary as review_summary
from ..review.persona import policy_personas, write_personas
from ..rollout import check_micro_problems, render_prompt, summarize
from . import micro as _micro  # noqa: F401 (registers the 'micro' model name's builder)
from .config import TrainConfig
from .length_reward import train_reward
from .preflight import check_run_requirements, failed_before_first_step
from .resume import read_json_lines
from .run_directory import Log, Processes, RunDirectory, RunRecorder, open_run
from .saving import bytes_written, save_final_checkpoint
from .warmstart import warmstart


def run_training(
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    log: Log = print,
    callbacks: list | tuple = (),
) -> tuple[dict, RunDirectory]:
    """Train with DCA-GRPO as `config` says, writing everything into the run directory `out`;
    with `resume`, continue the unfinished run in `out` from its last checkpoint. `callbacks` are
    extra `transformers.TrainerCallback`s (`dca experiment`'s evaluation along training).

    Bad input (problems, model, settings, output directory) raises UserError before anything
    is written.
    """
    problems = load_problems(config.problems)
    eval_problems = load_problems(config.eval_problems) if config.eval_problems else []
    check_micro_problems(resolve_model_path(config.model), problems + eval_problems)
    check_reward(config, problems + eval_problems)
    check_run_requirements(config, problems)  # reviewers that fit the domains, their models here
    if not resume and not overwrite and failed_before_first_step(out):
        log(f"replacing the run in {out}: it failed before its first step ({failed_before_first_step(out)})")
        overwrite = True
    judge = make_judge(config, problems + eval_problems)
    args = grpo_arguments(config, out)
    processes = Processes(args)
    if not processes.is_main:
        log = _silent
    start = processes.main_first(lambda: open_run(config, out, args, overwrite=overwrite, resume=resume, log=log))
    run = RunDirectory(out, writer=processes.is_main, resumed=start["resumed"])
    run.guard()
    try:
        with use_judge(judge):
            summary = _train(config, args, run, processes, problems, eval_problems, log, checkpoint=start["checkpoint"], callbacks=callbacks)
        if judge is not None:
            summary["judge"] = judge.stats.as_dict()
        if run.writer:
            summary["bytes_written"] = bytes_written(run.path)  # all but run.json and summary.json
    except BaseException as e:
        run.fail(e)
        cause = None if isinstance(e, UserError) or not isinstance(e, Exception) else environment_failure(e, run.path)
        if cause is not None:  # a full disk mid-run: one line, exit 3 (run.json says failed, and why)
            raise OutputFailure(f"cannot write the run in {out}: {cause}; free space, then run again (--resume continues from its last checkpoint)") from e
        raise
    finally:
        if judge is not None:
            judge.close()
    run.finish(summary)
    return summary, run


def check_reward(config: TrainConfig, problems: list[Problem]) -> None:
    """Open-ended problems have no verifier: without ``reward: judge`` nothing could reward
    them (a UserError, checked before anything else about the run)."""
    judged = sorted({domain_of(p).name for p in problems if domain_of(p).needs_judge})
    if config.reward != "judge" and judged:
        raise UserError(f"{', '.join(judged)} problems have no verifier: set reward: judge and judge: NAME (a reviewer of reviewers_file)")


def make_judge(config: TrainConfig, problems: list[Problem]):
    """The LLM judge of ``reward: judge`` (None otherwise); `run_training` has checked with
    `check_reward` that problems needing a judge have one."""
    if config.reward != "judge":  # (`check_reward` refused open-ended problems already)
        return None
    (spec,) = load_reviewers(config.reviewers_file, only=[config.judge])
    return Judge(spec, cache=ReviewCache(default_cache_path()), pass_score=config.judge_pass_score)


def grpo_arguments(config: TrainConfig, out: str | Path):
    """The run's `DCAGRPOConfig` (the ``grpo:`` settings, DCA's defaults, then ``trl:``); a bad
    combination is a UserError."""
    from .grpo_config import build_grpo_config  # heavy: TRL and torch load only when a run starts

    try:
        return build_grpo_config(
            grpo=config.grpo,
            trl_options=config.trl,
            output_dir=str(Path(out) / "trainer"),
            seed=config.seed,
            defaults=trainer_device_arguments(),
            credit=config.credit.to_credit_config(),
        )
    except (ValueError, TypeError) as e:
        raise UserError(f"trl settings: {str(e).splitlines()[0]}") from e


def make_reviewers(config: TrainConfig, context=None) -> list:
    """The reviewers `config.reviewer` names, built by the reviewer registry
    (`dca.review.registry`): a built-in one (oracle, reference, counterfactual) or any reviewer
    declared in `config.reviewers_file`. LLM reviewers share the review cache; a failed review
    makes the trainer fall back to uniform credit for that trace."""
    if config.reviewers_file is None:
        specs = [builtin_spec(name) for name in config.reviewer_names]
    else:
        specs = load_reviewers(config.reviewers_file, only=config.reviewer_names)
    if context is None:
        context = BuildContext()
    if context.cache is None and any(s.is_llm or s.backend == "noisy" for s in specs):
        context.cache = ReviewCache(default_cache_path())
    return build_reviewers(specs, context)


def _silent(message: str) -> None:
    pass


def _train(
    config: TrainConfig, args, run: RunDirectory, processes: Processes, problems, eval_problems, log: Log, *, checkpoint: str | None, callbacks=()
) -> dict:
    from datasets import Dataset  # heavy: torch, transformers, TRL and datasets load only when training runs
    from transformers import PrinterCallback, TrainerCallback

    from .grpo_trainer import DCAGRPOTrainer, domain_reward

    started = time.time()
    if run.writer:
        write_jsonl(run.file("problems.jsonl"), problems)
    model_path = config.model
    if config.warmstart is not None:
        model_path = str(warmstart(config.model, config.warmstart, log=log))
    model, tokenizer = load_model(model_path)
    g = config.grpo
    summary: dict = {"model": config.model, "start_checkpoint": model_path, "steps": g.steps, "processes": processes.count}
    if run.resumed:
        summary["resumed"] = run.resumed

    if eval_problems and processes.is_main:
        previous = run.file("eval_before.jsonl")
        if run.resumed and previous.exists():
            summary["eval_before"] = summarize([from_dict(Trace, row) for row in read_json_lines(previous)])
        else:
            log(f"evaluating the start model on {len(eval_problems)} held-out problems (greedy)")
            summary["eval_before"] = evaluate(model, tokenizer, eval_problems, max_new_tokens=g.max_completion_length, path=previous)
        log(f"  accuracy {summary['eval_before']['accuracy']:.1%}, format failures {summary['eval_before']['format_failures']:.1%}")
    processes.barrier()

    dataset = Dataset.from_list([{"prompt": chat_messages(p), "answer": p.answer, "problem_id": p.id} for p in problems])
    recorder = RunRecorder(run, processes)
    if run.resumed and run.writer:
        recorder.load_existing()
    metrics_file = run.file("metrics.jsonl")

    class _Metrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs or not state.is_world_process_zero:
                return
            append_jsonl(metrics_file, [{"step": state.global_step, **logs}])
            log(
                f"step {state.global_step}/{g.steps}  reward {logs.get('reward', 0):.2f}  "
                f"groups with zero std {logs.get('frac_reward_zero_std', 0):.0%}  "
                f"credited {logs.get('dca/fraction_credited', 0):.0%}  loss {logs['loss']:.4f}"
            )

    # A counterfactual reviewer without a model of its own probes the policy being trained.
    context = BuildContext(engine=HFContinuationEngine(model, tokenizer, name=model_path), render_prompt=lambda p: render_prompt(tokenizer, p))
    reviewers = make_reviewers(config, context)
    trainer = DCAGRPOTrainer(
        model=model,
        reward_funcs=[train_reward(config, domain_reward({p.id: p for p in problems}))],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[_Metrics(), *callbacks],
        reviewer=reviewers,
        problems={p.id: p for p in problems},
        consensus_rule=config.consensus_rule,
        recorder=recorder,
    )
    trainer.remove_callback(PrinterCallback)  # _Metrics prints a shorter line
    _send_tensorboard_to(trainer, run.file("tensorboard"))
    # TRL samples a whole generation batch per optimizer step: every micro-batch of every
    # gradient accumulation step, on every process.
    per_step = g.prompts_per_step * args.gradient_accumulation_steps * processes.count
    log(
        f"DCA-GRPO: {g.steps} steps of {per_step} prompt(s) x {g.num_generations} completions = "
        f"{per_step * g.num_generations} completions per optimizer step"
        + (f" (gradient accumulation {args.gradient_accumulation_steps})" if args.gradient_accumulation_steps > 1 else "")
        + (f" over {processes.count} processes" if processes.count > 1 else "")
        + f", credit '{config.credit.policy}'"
    )
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        close_reviewers(list(context.built.values()))
        if context.cache is not None:
            context.cache.close()
    if args.save_strategy == "no" and run.writer:
        shutil.rmtree(run.file("trainer"), ignore_errors=True)
    model.config.use_cache = True  # TRL turns it off for training; generation wants it back
    saved = save_final_checkpoint(trainer, model, tokenizer, run.file("checkpoint"), save=config.save, dtype=config.save_dtype, writer=run.writer)
    if run.writer and saved:
        personas = policy_personas(reviewers, model, model_path)
        if personas:  # the policy reviewed itself: its checkpoint declares the persona tokens it learnt
            write_personas(run.file("checkpoint"), personas)

    if eval_problems and processes.is_main:
        summary["eval_after"] = evaluate(model, tokenizer, eval_problems, max_new_tokens=g.max_completion_length, path=run.file("eval_after.jsonl"))
        log(f"after training: accuracy {summary['eval_after']['accuracy']:.1%}")
    processes.barrier()
    summary["train"] = {
        **summarize(recorder.traces),
        "groups_with_reward_variance": group_variance_fraction(recorder.traces),
        "reviews_failed": recorder.reviews_failed,
        **credit_figures(recorder.credits),
    }
    # The reviews' calls, tokens and cost as measured, in the figures `dca train --estimate` gives.
    summary["reviews"] = review_summary(recorder.review_stats, traces=len(recorder.traces))
    summary["seconds"] = round(time.time() - started, 1)
    if processes.is_main:
        summary["warnings"] = run_warnings(config, summary, read_json_lines(metrics_file))
    return summary


def evaluate(model, tokenizer, problems: list[Problem], *, max_new_tokens: int, path: Path | None = None) -> dict:
    """Greedy accuracy on `problems` by the one evaluation path (`dca.evaluate.evaluate_problems`,
    no reviewer); traces are written to `path` when given; a failed rollout is listed under
    ``failures`` (recorded, not raised)."""
    result = evaluate_problems("eval", problems, model, tokenizer, SamplingConfig(max_new_tokens=max_new_tokens, batch_size=16))
    if path is not None:
        write_jsonl(path, result.traces)
    figures = summarize(result.traces)
    if result.failures:
        figures["failures"] = result.failures
    return figures


# ---------------------------------------------------------------------------------------------
# The summary


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


def warm_started(model: str, warmstart) -> bool:
    """Whether the policy had a warm start: the run's own, the micro world's start (``micro``, or
    its shipped directory), or a checkpoint that `dca.train.warmstart` wrote (``warmstart.json``).
    Advice to warm-start first is wrong for these."""
    if warmstart is not None or model == _micro.WORLD:
        return True
    path = Path(model)
    return path.is_dir() and ((path / "warmstart.json").is_file() or path.resolve() == _micro.SHIPPED_DIR.resolve())


def run_warnings(config: TrainConfig, summary: dict, metrics: list[dict]) -> list[str]:
    """Where the run's figures would mislead (`dca.caveats`): printed now, kept in the summary."""
    found: list[str] = []
    messages = [zero_variance_warning(metrics, model=config.model, warmstarted=warm_started(config.model, config.warmstart))]
    messages += [format_failure_warning(summary[key], key.replace("_", " ")) for key in ("eval_before", "eval_after") if key in summary]
    for message in messages:
        if message:
            warn(message, found)
    return found


def _send_tensorboard_to(trainer, folder: Path) -> None:
    """TensorBoard event files go to the run directory's ``tensorboard/`` (transformers would
    put them under ``trainer/runs/``), unless TENSORBOARD_LOGGING_DIR says otherwise."""
    from transformers.integrations import TensorBoardCallback  # heavy: transformers loads only when training runs

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(folder)
