"""The run directory: its files, its lock and status, who writes it, and resuming it.

A run directory holds::

    config.yaml      the exact TrainConfig that produced it
    run.json         status: running -> finished | failed | terminated | interrupted (with the error)
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
alone writes the run directory (`RunRecorder`). What a run does with it is `dca.train.run`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from ..durable import environment_failure
from ..errors import Terminated, UserError
from ..files import append_jsonl, lock_dir, prepare_output_dir, unlock_dir, write_json, write_run_state, write_text_atomic
from ..records import Consensus, Credit, Review, Trace, from_dict
from ..review.llm_reviewer import ReviewerStats
from .config import TrainConfig
from .portable import portable_config
from .resume import last_checkpoint, read_json_lines, truncate_run_files

Log = Callable[[str], None]

# ---------------------------------------------------------------------------------------------
# Opening a run


def open_run(config: TrainConfig, out, args, *, overwrite: bool, resume: bool, log: Log) -> dict:
    """On the main process: make (or, resuming, cut back) the run directory; the checkpoint to
    resume from (None: from the start) and the resumes so far."""
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


def input_paths(config: TrainConfig) -> list[str | None]:
    """The files and directories a run reads (a run directory must not hold them)."""
    paths = [config.problems.file, config.eval_problems.file if config.eval_problems else None, config.reviewers_file]
    if Path(config.model).exists():
        paths.append(config.model)
    return paths


# ---------------------------------------------------------------------------------------------
# The folder


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


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Which process this is under ``accelerate launch`` (one process without it).

    Only the main process writes the run directory; the others follow it. `args` (the run's
    GRPOConfig) sets up accelerate's `PartialState` exactly as the trainer will use it."""

    def __init__(self, args):
        from accelerate import PartialState  # heavy: accelerate (torch) loads only when training runs

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
            from accelerate.utils import broadcast_object_list  # heavy: accelerate (torch) loads only when training runs

            shared = broadcast_object_list([result, error], from_process=0)
            result, error = shared
        if error is not None:
            raise UserError(error)
        return result

    def gather(self, records: list) -> list:
        """Every process's `records`, in process order (the local list with one process)."""
        if self.count == 1:
            return list(records)
        from accelerate.utils import gather_object  # heavy: accelerate (torch) loads only when training runs

        return gather_object(list(records))

