"""How fast a second writer is refused: `dca train`, `dca sft`, `dca eval` on an output directory
another process holds, beside the cost of importing the training libraries that the refusal
no longer waits for.

    PYTHONPATH=src python benchmarks/refusal_latency.py [--repeats 5]

Prints, per command, the median wall time from process start to exit (code 2, one line naming
the holder's pid), and the ratio of the library import (``dca.train.run`` and TRL's
GRPOConfig, what a ``--resume`` refusal used to come after) to the refusal. Goal: every
refusal under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from lock_holder import held_locks  # noqa: E402


def wall(command: list[str], *, expect: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != expect:
        raise SystemExit(f"{command}: exit {result.returncode}, expected {expect}: {result.stderr.strip()}")
    if expect == 2 and "being written by another process" not in result.stderr:
        raise SystemExit(f"{command}: not refused for the lock: {result.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = tmp / "run"
        out.mkdir()
        config = {"model": "embedded", "problems": {"synthetic": {"count": 8, "seed": 1}}, "grpo": {"steps": 1}}
        (tmp / "run.yaml").write_text(yaml.safe_dump(config))
        (out / "config.yaml").write_text(yaml.safe_dump(config))
        (out / "run.json").write_text('{"status": "running"}\n')
        dca = [sys.executable, "-m", "dca.cli"]
        commands = {
            "train --config": [*dca, "train", "--config", str(tmp / "run.yaml"), "--out", str(out), "--overwrite"],
            "train --resume": [*dca, "train", "--resume", "--out", str(out)],
            "sft": [*dca, "sft", "--edits", str(tmp / "edits.jsonl"), "--model", "embedded", "--out", str(out)],
            "eval": [*dca, "eval", "--model", "embedded", "--out", str(out)],
        }
        imports = statistics.median(wall([sys.executable, "-c", "import dca.train.run, dca.train.grpo_config"], expect=0) for _ in range(args.repeats))
        print(f"import dca.train.run + trl GRPOConfig (what a --resume refusal used to wait for): {imports:.2f} s (median of {args.repeats})")
        with held_locks(out):
            for name, command in commands.items():
                seconds = statistics.median(wall(command, expect=2) for _ in range(args.repeats))
                verdict = "ok" if seconds < 1.0 else "OVER 1 s"
                print(f"dca {name:<15} refused in {seconds:.2f} s ({verdict}); library import / refusal = {imports / seconds:.1f}x")


if __name__ == "__main__":
    main()
