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
    trainer/         TRL's checkpoints (checkpoint-N/), when the run saves any (trl.save_steps)
    tensorboard/     event files, with ``trl: {report_to: tensorboard}``
    checkpoint/      the trained model and tokenizer
    summary.json     written last: a run without it did not finish

Resume (``dca train --resume --out DIR``) continues from the last complete checkpoint in
``trainer/`` with TRL's ``resume_from_checkpoint``, after dropping from the run files every
record of a step after that checkpoint (`dca.train.resume`), so that each trace, review,
credit and metrics line is there exactly once; ``run.json`` lists each resume with its step.

Multi-process (``accelerate launch --num_processes N -m dca.cli train ...``): every process
generates and reviews its own completions; the records are gathered to the main process, which
alone writes the run directory (`RunRecorder`); DCA's metrics are aggregated across processes
by the trainer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

from ..caveats import format_failure_warning, warn, zero_variance_warning
from ..credit import credit_statistics
from ..domains.judge import use_judge
from ..durable import OutputFailure, environment_failure
from ..errors import Terminated, UserError
from ..domains import chat_messages
from ..rollout import check_micro_problems
from . import micro as _micro  # noqa: F401 (registers the 'micro' model name's builder)
from ..domains.sources import load_problems  # noqa: F401 (re-exported: one home for problem sources)
from ..evaluate import evaluate_problems
from ..files import append_jsonl, lock_dir, prepare_output_dir, unlock_dir, write_json, write_jsonl, write_run_state, write_text_atomic
from ..model import SamplingConfig, load_model, resolve_model_path, trainer_device_arguments
from ..records import Consensus, Credit, Problem, Review, Trace, from_dict
from ..rollout import summarize
from ..review.batch import summary as review_summary
from ..review.llm_reviewer import ReviewerStats
from .config import TrainConfig
from .portable import portable_config
from .preflight import check_run_requirements, failed_before_first_step
from .saving import bytes_written, save_final_checkpoint
from .resume import last_checkpoint, read_json_lines, truncate_run_files
from .warmstart import warmstart

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Inputs


def make_reviewers(config: TrainConfig, context=None) -> list:
    """The reviewers `config.reviewer` names, built by the reviewer registry
    (`dca.review.registry`): a built-in one (oracle, reference, counterfactual) or any reviewer
    declared in `config.reviewers_file`. LLM reviewers share the review cache; a failed review
    makes the trainer fall back to uniform credit for that trace."""
    from ..review import BuildContext, ReviewCache, build_reviewers, builtin_spec, default_cache_path, load_reviewers

    if config.reviewers_file is None:
        specs = [builtin_spec(name) for name in config.reviewer_names]
    else:
        specs = load_reviewers(config.reviewers_file, only=config.reviewer_names)
    if context is None:
        context = BuildContext()
    if context.cache is None and any(s.is_llm or s.backend == "noisy" for s in specs):
        context.cache = ReviewCache(default_cache_path())
    return build_reviewers(specs, context)


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Which process this is under ``accelerate launch`` (one process without it).

    Only the main process writes the run directory; the others follow it. `args` (the run's
    GRPOConfig) sets up accelerate's `PartialState` exactly as the trainer will use it."""

    def __init__(self, args):
        from accelerate import PartialState

        _ = args.device  # the trainer's own device setup: starts the process group (gloo on CPUs)
        self.state = args.distributed_state or PartialState()
        self.count = self.state.num_processes
        self.is_main = self.state.is_main_process

    def barrier(self) -> None:
        if self.count > 1:
            self.state.wait_for_everyone()

    def main_first(self, action: Callable[[], object]) -> object:
        """Run `action` on the main process and share its result; a UserError it raises is
        raised on every process (so none waits forever for a main process that gave up)."""
        result, error = None, None
        if self.is_main:
            try:
                result = action()
            except UserError as e:
                error = str(e)
        if self.count > 1:
            from accelerate.utils import broadcast_object_list

            shared = broadcast_object_list([result, error], from_process=0)
            result, error = shared
        if error is not None:
            raise UserError(error)
        return result

    def gather(self, records: list) -> list:
        """Every process's `records`, in process order (the local list with one process)."""
        if self.count == 1:
            return list(records)
        from accelerate.utils import gather_object

        return gather_object(list(records))


# ---------------------------------------------------------------------------------------------
# Run directory


class RunDirectory:
    """Owns one run's output folder; refuses to mix runs or to look finished when it is not.

    `writer` is False on the non-main processes of a multi-process run: they know the paths
    but write nothing.

    The folder is locked while the main process writes it (`dca.files.lock_dir`: a second
    writer, even with --overwrite or --resume, gets an error naming this pid), and from
    `guard` to `finish`/`fail` a SIGTERM raises `Terminated` so that ``run.json`` ends
    ``terminated`` rather than ``running`` (a kill -9 cannot be caught: its ``run.json`` stays
    ``running`` with the pid of a process that is gone, and the lock is free again).
    """

    def __init__(self, path: str | Path, *, writer: bool = True, resumed: list[dict] | None = None):
        self.path = Path(path)
        self.writer = writer
        self.resumed = list(resumed or [])
        self._previous_handler = None

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path | None] = ()) -> "RunDirectory":
        return cls(prepare_output_dir(path, overwrite=overwrite, marker="run.json", kind="a DCA run", inputs=inputs))

    @classmethod
    def reopen(cls, path: str | Path) -> "RunDirectory":
        """An unfinished run directory to resume; UserError when there is none."""
        path = Path(path)
        status_file = path / "run.json"
        if not status_file.is_file():
            raise UserError(f"--out {path} is not a DCA run directory (no run.json); nothing to resume")
        try:
            status = json.loads(status_file.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise UserError(f"{status_file} is unreadable ({e}); the run cannot be resumed") from e
        if status.get("status") == "finished":
            raise UserError(f"the run in {path} already finished; nothing to resume")
        lock_dir(path)
        return cls(path, resumed=status.get("resumed", []))

    def file(self, name: str) -> Path:
        return self.path / name

    def start(self, config: TrainConfig) -> None:
        if self.writer:
            write_text_atomic(self.file("config.yaml"), portable_config(config, self.path).to_yaml())
            self._status("running", pid=os.getpid())

    def resume(self, *, step: int, checkpoint: str | None, dropped: dict[str, int]) -> None:
        self.resumed.append(
            {"step": step, "checkpoint": checkpoint, "dropped": dropped, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        )
        if self.writer:
            self._status("running", pid=os.getpid())

    def guard(self) -> None:
        """From now until `finish`/`fail`, SIGTERM raises `Terminated` (main thread only)."""
        if self.writer and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)

    def finish(self, summary: dict) -> None:
        if self.writer:
            write_json(self.file("summary.json"), summary)
            self._status("finished")
        self._close()

    def fail(self, error: BaseException) -> None:
        if self.writer:
            if isinstance(error, Terminated):
                self._status("terminated", error=str(error))
            elif isinstance(error, KeyboardInterrupt):
                self._status("interrupted", error="KeyboardInterrupt")
            else:
                reason = f"{type(error).__name__}: {error}"
                cause = environment_failure(error, self.path)  # torch's "file write failed" hides a full disk
                self._status("failed", error=reason if cause is None or cause in reason else f"{cause}: {reason}")
        self._close()

    def _close(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None
        if self.writer:
            unlock_dir(self.path)

    def _status(self, status: str, **extra) -> None:
        resumed = {"resumed": self.resumed} if self.resumed else {}
        state = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **resumed, **extra}
        try:
            write_run_state(self.file("run.json"), state)  # on a full disk: in place, in the blocks it owns
        except UserError:
            if status == "running":
                raise
            # Not even that: run.json stays "running" with a dead pid and a free lock, which every
            # reader reports as interrupted (`dca.files.run_status`); the run's error is raised.


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


class RunRecorder:
    """Appends each generation batch's traces, reviews and credits to the run directory.

    Called on every process with that process's records; they are gathered to the main
    process, which alone writes them (and keeps them for the summary)."""

    def __init__(self, run: RunDirectory, processes: Processes | None = None):
        self.run = run
        self.processes = processes
        self.traces: list[Trace] = []
        self.credits: list[Credit] = []
        self.reviews_failed = 0
        self.review_stats: dict = {}  # reviewer -> ReviewerStats: calls, tokens, cost (issue 22)

    def load_existing(self) -> None:
        """Take in the records already in the run directory (a resumed run's earlier steps)."""
        self.traces = [from_dict(Trace, row) for row in read_json_lines(self.run.file("traces.jsonl"))]
        self.credits = [from_dict(Credit, row) for row in read_json_lines(self.run.file("credits.jsonl"))]
        self.reviews_failed = sum(row.get("status") != "ok" for row in read_json_lines(self.run.file("reviews.jsonl")))
        self._count_reviews(from_dict(Review, row) for row in read_json_lines(self.run.file("reviews.jsonl")))

    def _count_reviews(self, reviews) -> None:
        for review in reviews:
            self.review_stats.setdefault(review.reviewer, ReviewerStats()).add(review)

    def record(
        self, *, step: int, traces: list[Trace], reviews: list[Review], credits: list[Credit], consensuses: list[Consensus]
    ) -> None:
        if self.processes is not None and self.processes.count > 1:
            traces, reviews, credits, consensuses = (self.processes.gather(x) for x in (traces, reviews, credits, consensuses))
        if not self.run.writer:
            return
        append_jsonl(self.run.file("traces.jsonl"), traces)
        append_jsonl(self.run.file("reviews.jsonl"), reviews)
        append_jsonl(self.run.file("credits.jsonl"), credits)
        if consensuses:  # several reviewers: the merged analysis each credit came from
            append_jsonl(self.run.file("consensus.jsonl"), consensuses)
        self.traces.extend(traces)
        self.credits.extend(credits)
        self.reviews_failed += sum(r.status != "ok" for r in reviews)
        self._count_reviews(reviews)


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


def input_paths(config: TrainConfig) -> list[str | None]:
    """The files and directories a run reads (a run directory must not hold them)."""
    paths = [config.problems.file, config.eval_problems.file if config.eval_problems else None, config.reviewers_file]
    if Path(config.model).exists():
        paths.append(config.model)
    return paths


def grpo_arguments(config: TrainConfig, out: str | Path):
    """The run's `DCAGRPOConfig` (the ``grpo:`` settings, DCA's defaults, then ``trl:``); a bad
    combination is a UserError."""
    from .grpo_config import build_grpo_config

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
    start = processes.main_first(lambda: _open_run(config, out, args, overwrite=overwrite, resume=resume, log=log))
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
    from ..domains import domain_of

    judged = sorted({domain_of(p).name for p in problems if domain_of(p).needs_judge})
    if config.reward != "judge" and judged:
        raise UserError(f"{', '.join(judged)} problems have no verifier: set reward: judge and judge: NAME (a reviewer of reviewers_file)")


def make_judge(config: TrainConfig, problems: list[Problem]):
    """The LLM judge of ``reward: judge`` (None otherwise); `run_training` has checked with
    `check_reward` that problems needing a judge have one."""
    from ..domains.judge import Judge

    if config.reward != "judge":  # (`check_reward` refused open-ended problems already)
        return None
    from ..review import ReviewCache, default_cache_path, load_reviewers

    (spec,) = load_reviewers(config.reviewers_file, only=[config.judge])
    return Judge(spec, cache=ReviewCache(default_cache_path()), pass_score=config.judge_pass_score)


def _silent(message: str) -> None:
    pass


def _open_run(config: TrainConfig, out, args, *, overwrite: bool, resume: bool, log: Log) -> dict:
    """On the main process: make (or, resuming, cut back) the run directory."""
    if not resume:
        run = RunDirectory.create(out, overwrite=overwrite, inputs=input_paths(config))
        run.start(config)
        return {"checkpoint": None, "resumed": []}
    run = RunDirectory.reopen(out)
    if args.save_strategy == "no":
        raise UserError(f"the run in {out} saves no checkpoints (set trl: {{save_steps: N}}); start it again with --overwrite")
    if args.save_only_model:
        raise UserError(f"the run in {out} saves weights only (trl.save_only_model), which TRL cannot resume from; start it again with --overwrite")
    found = last_checkpoint(run.file("trainer"))
    checkpoint, step = (str(found[0]), found[1]) if found else (None, 0)
    dropped = truncate_run_files(run.path, step)
    for name in ("summary.json", "eval_after.jsonl"):
        run.file(name).unlink(missing_ok=True)
    run.resume(step=step, checkpoint=checkpoint, dropped=dropped)
    log(
        f"resuming {out} from step {step}" + (f" ({checkpoint})" if checkpoint else " (no complete checkpoint yet: from the start)")
        + f"; dropped the records of later steps: {sum(dropped.values())}"
    )
    return {"checkpoint": checkpoint, "resumed": run.resumed}


def _train(
    config: TrainConfig, args, run: RunDirectory, processes: Processes, problems, eval_problems, log: Log, *, checkpoint: str | None, callbacks=()
) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback

    from .grpo_trainer import DCAGRPOTrainer, domain_reward
    from .length_reward import train_reward

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

    from ..continuation import HFContinuationEngine
    from ..review import BuildContext, close_reviewers
    from ..rollout import render_prompt

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
        from ..review.persona import policy_personas, write_personas

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


def run_warnings(config: TrainConfig, summary: dict, metrics: list[dict]) -> list[str]:
    """Where the run's figures would mislead (`dca.caveats`): printed now, kept in the summary."""
    found: list[str] = []
    messages = [zero_variance_warning(metrics, model=config.model, warmstarted=config.warmstart is not None)]
    messages += [format_failure_warning(summary[key], key.replace("_", " ")) for key in ("eval_before", "eval_after") if key in summary]
    for message in messages:
        if message:
            warn(message, found)
    return found


def _send_tensorboard_to(trainer, folder: Path) -> None:
    """TensorBoard event files go to the run directory's ``tensorboard/`` (transformers would
    put them under ``trainer/runs/``), unless TENSORBOARD_LOGGING_DIR says otherwise."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(folder)
