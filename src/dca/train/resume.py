"""Resuming a killed run: find its last complete checkpoint and cut its run files back to it.

A TRL checkpoint ``trainer/checkpoint-N/`` is written file by file (weights, optimizer, RNG,
``trainer_state.json``), so a ``kill -9`` can leave half of one. `DCAGRPOTrainer` writes
`DCA_STATE_FILE` into the folder after everything else, on every process's behalf; only a
folder holding it counts as a checkpoint here.

The run files are appended to during training, one generation batch at a time. A record
generated at global step ``s`` (``Trace.step``) belongs to the optimizer step ``s + 1``; resuming
from checkpoint ``N`` replays the steps after ``N``, so `truncate_run_files` keeps the traces
with ``step < N`` (and the reviews, credits and consensuses of those traces) and the metrics
lines with ``step <= N``. A last line cut short by the kill is dropped (it was being written
after the checkpoint, and counted under ``dropped``); a broken line anywhere else is an error. Torch-free.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import UserError
from ..files import atomic_writer

#: Written last into each complete checkpoint folder: ``{"global_step", "generation_round"}``.
DCA_STATE_FILE = "dca_state.json"

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

#: Run files whose records carry a ``trace_id`` (kept when their trace is kept).
BY_TRACE = ("reviews.jsonl", "credits.jsonl", "consensus.jsonl")


def last_checkpoint(trainer_dir: str | os.PathLike) -> tuple[Path, int] | None:
    """The newest complete checkpoint under `trainer_dir` and its global step, or None."""
    folder = Path(trainer_dir)
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and (child / DCA_STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    if not found:
        return None
    step, path = max(found)
    return path, step


def read_json_lines(path: Path) -> list[dict]:
    """The JSON objects of a growing log; a last line cut short by a kill is left out."""
    return read_json_lines_torn(path)[0]


def read_json_lines_torn(path: Path) -> tuple[list[dict], int]:
    """`read_json_lines` and how many torn last lines it left out (0 or 1)."""
    if not path.is_file():
        return [], 0
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if lineno == len(lines):
                return rows, 1  # the line being written when the run was killed
            raise UserError(f"{path}:{lineno}: broken record ({e.msg}); the run directory cannot be resumed") from e
    return rows, 0


def _rewrite(path: Path, rows: list[dict]) -> None:
    with atomic_writer(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def truncate_run_files(run_dir: str | os.PathLike, step: int) -> dict[str, int]:
    """Drop every record of a step after checkpoint `step` from the run files; returns how many
    records each file lost."""
    run_dir = Path(run_dir)
    dropped: dict[str, int] = {}
    traces, torn = read_json_lines_torn(run_dir / "traces.jsonl")
    kept = [t for t in traces if t.get("step") is not None and t["step"] < step]
    keep_ids = {t["id"] for t in kept}
    if (run_dir / "traces.jsonl").exists():
        _rewrite(run_dir / "traces.jsonl", kept)
        dropped["traces.jsonl"] = len(traces) + torn - len(kept)
    for name in BY_TRACE:
        path = run_dir / name
        if path.exists():
            rows, torn = read_json_lines_torn(path)
            keep = [r for r in rows if r.get("trace_id") in keep_ids]
            _rewrite(path, keep)
            dropped[name] = len(rows) + torn - len(keep)  # a torn last line counts as dropped
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        rows, torn = read_json_lines_torn(metrics)
        keep = [r for r in rows if r.get("step", 0) <= step]
        _rewrite(metrics, keep)
        dropped["metrics.jsonl"] = len(rows) + torn - len(keep)
    return dropped
