"""Reading input files and preparing output directories, with one-line errors for the user.

Every command reads JSON-lines records and writes into an output directory; these two
helpers give them the same checks and the same messages (a `UserError`: one line, exit 2).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TypeVar

from .errors import UserError
from .records import Problem, read_jsonl

R = TypeVar("R")


def read_records(path: str | os.PathLike, cls: type[R], *, what: str, hint: str = "") -> list[R]:
    """Records of type `cls` from a JSON-lines file; a missing or malformed file is a UserError.

    `what` names the file in messages ("traces"); `hint`, when given, says how to make one.
    """
    suffix = f"; {hint}" if hint else ""
    if not Path(path).is_file():
        raise UserError(f"{what} file {path} does not exist{suffix}")
    try:
        return read_jsonl(path, cls)
    except (ValueError, OSError) as e:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{str(e).splitlines()[0]}{suffix}") from e


def prepare_output_dir(path: str | os.PathLike, *, overwrite: bool, marker: str, kind: str) -> Path:
    """An empty, writable directory at `path`.

    A non-empty directory is replaced only with `overwrite`, and only when it holds `marker`
    (the file that makes it `kind`, e.g. ``run.json`` for "a DCA run"): other files are never
    deleted.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} is not empty; choose a new directory or pass --overwrite")
        if not (out / marker).exists():
            raise UserError(f"--out {out} holds files that are not {kind}; refusing to overwrite them")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to --out {out}: {e.strerror or e}; choose a writable directory") from e
    return out


def read_problems_file(path: str | os.PathLike) -> list[Problem]:
    """The problems of a JSON-lines file written by `dca problems`; an empty file is an error."""
    problems = read_records(path, Problem, what="problems", hint="write problems with `dca problems`")
    if not problems:
        raise UserError(f"problems file {path} holds no problems")
    return problems
