"""Another process that holds output directories' locks (`dca.files.lock_dir`), for the
tests of a second writer being refused."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def held_locks(*directories: Path, seconds: int = 900) -> Iterator[subprocess.Popen]:
    """A child process holding the lock of each of `directories` until the block ends (it is
    killed then, as by kill -9: its locks die with it); yields the process (its ``pid`` is the
    one the refusal names)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from dca.files import lock_dir\n"
         f"[lock_dir(Path(p)) for p in sys.argv[1:]]; print('locked', flush=True); time.sleep({seconds})",
         *map(str, directories)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
