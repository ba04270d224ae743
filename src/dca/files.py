"""Reading input files and writing outputs, with one-line errors for the user and no silent loss.

Every command reads JSON-lines records and writes a file or an output directory; these helpers
give them the same checks and the same messages (a `UserError`: one line, exit 2):

* `read_records` validates every record on read (`dca.records.from_dict`) and names the file
  and line of the first bad one; a missing file, a directory, a non-UTF-8 file and an empty
  file are errors that name the path.
* `check_output_file` refuses an existing output unless ``--overwrite``, and always refuses an
  output that is one of the command's inputs (compared as resolved paths, so ``./t.jsonl``
  and ``t.jsonl`` are the same file); `write_text_atomic`, `write_json` and
  `write_jsonl` write a temporary file beside the target and rename it, removing
  it on any failure (all through `atomic_writer`, the one atomic write: fsynced before the rename, an OS error
  an `OutputFailure` naming the path);
  `scratch_dir` and `publish_dir` do the same for a directory (a checkpoint).
* `prepare_output_dir` locks the directory for this process (``.dca-lock`` holding the pid;
  a second writer gets an error naming the holder) before ``--overwrite`` may empty it, and
  it empties only a directory that holds the command's marker file (``run.json``,
  ``eval.json``, ``sft.json``); `check_output_dir` is its check without the writing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, TypeVar

import yaml

from .durable import NO_SPACE_ERRNOS, raise_output_failure, replace_durably, rewrite_in_place
from .errors import UserError
from .records import Problem, RecordError, from_dict, to_dict

R = TypeVar("R")

#: The lock file a writing process holds in its output directory (flock; the pid inside).
LOCK_NAME = ".dca-lock"


# ---------------------------------------------------------------------------------------------
# Reading


def check_input_file(path: str | os.PathLike, *, what: str, hint: str = "") -> Path:
    """`path` as an existing, readable, non-empty regular file, else a UserError naming it."""
    suffix = f"; {hint}" if hint else ""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} file {p} is a directory; give a file")
    if not p.exists():
        raise UserError(f"{what} file {p} does not exist{suffix}")
    if not p.is_file():
        raise UserError(f"{what} file {p} is not a regular file")
    if not os.access(p, os.R_OK):
        raise UserError(f"{what} file {p} is not readable")
    return p


def read_records(path: str | os.PathLike, cls: type[R], *, what: str, hint: str = "", allow_empty: bool = False) -> list[R]:
    """Records of type `cls` from a JSON-lines file, each validated; any fault is a UserError.

    `what` names the file in messages ("traces"); `hint`, when given, says how to make one. A
    file without records is an error unless `allow_empty`.
    """
    suffix = f"; {hint}" if hint else ""
    p = check_input_file(path, what=what, hint=hint)
    try:
        records = read_jsonl(p, cls)
    except UnicodeDecodeError as e:
        raise UserError(f"{what} file {p} is not UTF-8 text (byte {e.start}); give a JSON-lines file") from e
    except (ValueError, OSError) as e:
        raise UserError(f"{str(e).splitlines()[0]}{suffix}") from e
    if not records and not allow_empty:
        raise UserError(f"{what} file {p} holds no records{suffix}")
    return records


def read_yaml(path: str | os.PathLike, *, what: str) -> object:
    """The data of a YAML file (None when empty); a missing, non-UTF-8 or invalid file, and a
    mapping that repeats a key (YAML would keep the last silently), are UserErrors."""
    class _UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                    )
                try:
                    seen.add(key)
                except TypeError:
                    pass
            return super().construct_mapping(node, deep=deep)

    p = check_input_file(path, what=what)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} file {p} is not UTF-8 text (byte {e.start})") from e
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None)
        mark = getattr(e, "problem_mark", None)
        if problem and mark is not None:
            raise UserError(f"{p}:{mark.line + 1}: not valid YAML: {problem}") from e
        raise UserError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from e


def read_problems_file(path: str | os.PathLike) -> list[Problem]:
    """The problems of a JSON-lines file written by `dca problems`; an empty file is an error."""
    return read_records(path, Problem, what="problems", hint="write problems with `dca problems`")


def cache_dir() -> Path:
    """DCA's cache directory: ``$DCA_CACHE_DIR``, else ``~/.cache/dca`` (the converted embedded
    model, warm starts, the review cache). The one place that decides it."""
    return Path(os.environ.get("DCA_CACHE_DIR") or Path.home() / ".cache" / "dca")


# ---------------------------------------------------------------------------------------------
# Output files


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (resolved; hard links and symlinks included)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def check_output_file(
    path: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike | None] = (), flag: str = "--out"
) -> Path:
    """An output file path that may be written: its directory exists and is writable, it is
    none of `inputs`, and it does not exist unless `overwrite`."""
    out = Path(path)
    if not str(path).strip():
        raise UserError(f"{flag} is empty; give a file path")
    for source in inputs:
        if source is not None and same_path(out, source):
            raise UserError(f"{flag} {out} is also an input ({source}); write the output to another file")
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UserError(f"{flag} {out} is a directory; give a file path")
    if not parent.is_dir():
        raise UserError(f"directory {parent} does not exist; create it or choose another {flag}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to directory {parent}; choose a writable {flag}")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise UserError(f"{flag} {out} exists; pass --overwrite to replace it, or choose another path")
        if not out.is_file():
            raise UserError(f"{flag} {out} is not a regular file; refusing to replace it")
        if not os.access(out, os.W_OK):
            raise UserError(f"{flag} {out} is read-only; refusing to replace it")
    return out


def temp_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed to `path`."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A text file that replaces `path` when the block ends: written under a temporary name
    beside `path` (`temp_path`), fsynced and renamed over it, so a crash never leaves half a
    file; on any failure the temporary file is removed and `path` is unchanged, and an OS error
    (a full disk, a read-only filesystem) is an `OutputFailure` naming `path`. The one atomic
    write: `write_text_atomic`, `write_json` and `write_jsonl` are its short forms."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        f = open(tmp, "w", encoding="utf-8")
        try:
            yield f
            replace_durably(f, tmp, path)
        finally:
            f.close()
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise_output_failure(path, e)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`; on any
    failure the temporary file is removed and `path` is unchanged (`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, data: object) -> None:
    """`data` as indented JSON (UTF-8, not ASCII-escaped), written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def scratch_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh directory beside `target` (``.partial-*``, same file system) to build it in;
    removed when the block ends, so nothing half-built is left. `publish_dir` inside the block
    makes it `target`: a checkpoint (or any directory) appears whole or not at all."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def publish_dir(scratch: Path, target: str | os.PathLike) -> None:
    """Replace `target` (if any) by the finished `scratch` directory, with one rename."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    os.replace(scratch, target)


def write_run_state(path: str | os.PathLike, state: dict) -> None:
    """Write a run's state file (``run.json``) durably; on a full disk, overwrite the old one in
    the blocks it already owns, the ``error`` shortened as needed, so that a run that fails for
    want of space still records ``failed`` and why. Raises `OutputFailure` when neither works."""
    path = Path(path)
    try:
        write_text_atomic(path, json.dumps(state, indent=2, ensure_ascii=False) + "\n")
        return
    except UserError as e:
        cause = e.__cause__
        if not (isinstance(cause, OSError) and cause.errno in NO_SPACE_ERRNOS):
            raise
        failure = e
    error = str(state.get("error", ""))
    for limit in (len(error), 400, 100, 0):
        compact = {**state, "error": error[:limit]} if "error" in state else state
        if rewrite_in_place(path, (json.dumps(compact, ensure_ascii=False, separators=(",", ":")) + "\n").encode()):
            return
    raise failure


# ---------------------------------------------------------------------------------------------
# Output directories

_HELD: dict[Path, int] = {}  # directory -> fd of the lock this process holds


def lock_dir(directory: Path) -> None:
    """Hold `directory`'s lock for this process (until `unlock_dir` or exit).

    The lock is an flock on ``directory/.dca-lock``, so it dies with its process (kill -9
    included); the file holds the holder's pid for the message a second writer gets.
    """
    key = directory.resolve()
    if key in _HELD:
        return
    lock = directory / LOCK_NAME
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise _busy(directory) from None
        try:  # the holder may have removed the file between our open and flock: lock the new one
            if os.stat(lock).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                continue
        except FileNotFoundError:
            os.close(fd)
            continue
        break
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[key] = fd


def _holder(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def _busy(directory: Path) -> UserError:
    return UserError(
        f"{directory} is being written by another process (pid {_holder(directory / LOCK_NAME)}); wait for it to finish or choose another --out"
    )


def check_unlocked(directory: Path) -> None:
    """A UserError when another process holds `directory`'s lock (nothing is taken; the lock
    this process holds is no obstacle)."""
    if directory.resolve() in _HELD:
        return
    lock = directory / LOCK_NAME
    if not lock.is_file():
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise _busy(directory) from None
        raise
    finally:
        os.close(fd)


def is_locked(directory: Path) -> bool:
    """Whether a live process (this one included) holds `directory`'s lock."""
    try:
        check_unlocked(directory)
    except UserError:
        return True
    return directory.resolve() in _HELD


def read_state(path: str | os.PathLike) -> dict:
    """A run's or an experiment's state file (``run.json``, ``experiment.json``) as written, except
    that ``running`` becomes ``interrupted`` when no live process holds its directory's lock: the
    writer was killed (kill -9, a power cut) or could not even record its failure. {} when the
    file is missing or unreadable."""
    path = Path(path)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(state, dict) and state.get("status") == "running" and not is_locked(path.parent):
        state = {**state, "status": "interrupted", "recorded_status": "running"}
    return state if isinstance(state, dict) else {}


def unlock_dir(directory: Path) -> None:
    """Release the lock `lock_dir` took (a no-op when this process holds none)."""
    fd = _HELD.pop(directory.resolve(), None)
    if fd is None:
        return
    try:
        (directory / LOCK_NAME).unlink(missing_ok=True)
    finally:
        os.close(fd)


def _entries(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name != LOCK_NAME]


def check_output_dir(
    path: str | os.PathLike, *, overwrite: bool, marker: str, kind: str, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Check that `path` may become the output directory: not a file, no input inside it, and
    empty unless `overwrite` and it holds `marker` (the file that makes it `kind`, e.g.
    ``run.json`` for "a DCA run"): other directories are never emptied."""
    out = Path(path)
    if not str(path).strip():
        raise UserError("--out is empty; give a directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    for source in inputs:
        if source is not None and Path(source).exists() and _inside(Path(source), out):
            raise UserError(f"--out {out} holds an input of this command ({source}); choose another --out")
    if out.is_dir():
        check_unlocked(out)
    if out.is_dir() and _entries(out):
        if not overwrite:
            raise UserError(f"--out {out} is not empty; choose a new directory or pass --overwrite")
        if not (out / marker).is_file():
            raise UserError(f"--out {out} holds files that are not {kind} (no {marker}); refusing to overwrite them")
    parent = out.parent if str(out.parent) else Path(".")
    existing = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        raise UserError(f"cannot write into {existing if existing != out else parent}; choose a writable --out")
    return out


def prepare_output_dir(
    path: str | os.PathLike, *, overwrite: bool, marker: str, kind: str, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """An empty, writable directory at `path`, locked for this process (see `check_output_dir`
    for what is refused). The lock is taken before anything is removed, so an ``--overwrite``
    can never empty a directory another process is writing."""
    inputs = list(inputs)
    out = check_output_dir(path, overwrite=overwrite, marker=marker, kind=kind, inputs=inputs)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock_dir(out)
    except OSError as e:
        raise UserError(f"cannot write to --out {out}: {e.strerror or e}; choose a writable directory") from e
    try:
        # Checked again under the lock: the directory may have changed since.
        check_output_dir(out, overwrite=overwrite, marker=marker, kind=kind, inputs=inputs)
        for entry in _entries(out):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    except BaseException:
        unlock_dir(out)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------------------------
# JSON-lines records


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Write records atomically and durably (`atomic_writer`); returns how many."""
    n = 0
    with atomic_writer(path) as f:
        for record in records:
            f.write(json.dumps(to_dict(record), ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Append records to a growing log (per-step metrics, traces during training); an OS error
    is an `OutputFailure` naming `path` (a torn last line is what `--resume` drops)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            for record in records:
                data = record if isinstance(record, dict) else to_dict(record)
                f.write(json.dumps(data, ensure_ascii=False) + "\n")
    except OSError as e:
        raise_output_failure(path, e)
        raise


def iter_jsonl(path: str | os.PathLike, cls: type[R]) -> Iterator[R]:
    """Yield records of type `cls`; raises ValueError naming the line on bad input."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as e:
                raise RecordError(f"{path}:{lineno}: not JSON ({e})") from e
            try:
                yield from_dict(cls, data)
            except (ValueError, TypeError) as e:
                raise RecordError(f"{path}:{lineno}: not a valid {cls.__name__} record: {e}") from e


def read_jsonl(path: str | os.PathLike, cls: type[R]) -> list[R]:
    return list(iter_jsonl(path, cls))
