"""Writing files that survive a crash, and saying so in one line when the machine refuses a write.

* `replace_durably` flushes and fsyncs a temporary file before renaming it over its target
  (and fsyncs the directory after), so a power cut never leaves an empty or torn file under a
  finished file's name.
* `OutputFailure` (a `UserError` with exit code 3, raised by `raise_output_failure`) is what a
  command raises when the environment, not the user's input, refused an output: a full disk or
  quota, a read-only or vanished filesystem, an I/O error. `environment_failure` recognises one
  behind any exception (the OSError itself, one in its chain, or a library's own wrapping of
  it: torch's ``file write failed``, safetensors' ``StorageFull``, SQLite's ``disk is full``).
* `rewrite_in_place` overwrites a small file within the blocks it already owns: the run state
  ``failed`` can still be recorded on a disk with no free block left.

Light on purpose (standard library only): the CLI imports it before any training library.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

from .errors import UserError

#: Exit code of `OutputFailure` (a user mistake is 2).
ENVIRONMENT_EXIT_CODE = 3

#: OS errors that mean "the machine refused to store this", not "the program is wrong".
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EMFILE, errno.ENFILE, errno.ESTALE}
)

#: The errors of "no space": the ones `rewrite_in_place` can work around.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

#: How libraries that wrap an OS error spell a full disk.
_NO_SPACE_WORDS = ("no space left on device", "storagefull", "disk is full", "disk quota exceeded")


class OutputFailure(UserError):
    """The environment refused an output (full disk, read-only filesystem, ...): one line naming
    the path and the cause, exit code 3."""

    exit_code = ENVIRONMENT_EXIT_CODE


def raise_output_failure(path: str | os.PathLike, error: BaseException) -> None:
    """Raise an `OutputFailure` (from `error`) when `error`, met while writing `path`, is the
    environment refusing the write; return otherwise (the caller re-raises: a bug keeps its
    traceback)."""
    cause = environment_failure(error, path)
    if cause is not None:
        raise OutputFailure(f"cannot write {path}: {cause}; {_fix(error)}") from error


def _fix(error: BaseException) -> str:
    no_space = isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS
    return "free space or choose another output" if no_space or "space" in str(error).lower() else "choose another output"


def _no_space_on(path: str | os.PathLike | None) -> bool:
    """Whether the filesystem holding `path` (or its nearest existing parent) is full."""
    if path is None:
        return False
    p = Path(path)
    for candidate in [p, *p.parents]:
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize < 64 * 1024 or (st.f_files > 0 and st.f_favail == 0)
    return False


def environment_failure(error: BaseException, path: str | os.PathLike | None = None) -> str | None:
    """The cause, in the OS's words, when `error` (or one in its chain) is the environment refusing
    a write; None for anything else (a bug keeps its traceback). `path`, when given, is checked
    for a full filesystem: libraries that wrap the OS error (torch's ``file write failed``) lose
    its errno."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in ENVIRONMENT_ERRNOS:
            return current.strerror or os.strerror(current.errno)
        text = str(current).lower()
        if any(words in text for words in _NO_SPACE_WORDS):
            return os.strerror(errno.ENOSPC)
        if "read-only file system" in text or "readonly database" in text:
            return os.strerror(errno.EROFS)
        if "file write failed" in text and path is None:  # torch's stream writer, errno lost
            return "a file write failed (a full disk or an I/O error)"
        current = current.__cause__ or current.__context__
    if not isinstance(error, OSError) and _no_space_on(path):
        return os.strerror(errno.ENOSPC)
    return None


def failure_line(error: BaseException) -> str | None:
    """One line for an environment failure that reached the top of a command unnamed (the path
    from the OSError when it has one); None when `error` is not one (see `environment_failure`)."""
    cause = environment_failure(error)
    if cause is None:
        return None
    current, seen = error, set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.filename:
            return f"cannot write {current.filename}: {cause}; {_fix(current)}"
        current = current.__cause__ or current.__context__
    return f"{cause} ({type(error).__name__}); {_fix(error)}"


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def replace_durably(file: IO, tmp: Path, path: Path) -> None:
    """Flush and fsync the open temporary `file` (at `tmp`), close it and rename it over `path`."""
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(tmp, path)
    _fsync_directory(path.parent if str(path.parent) else Path("."))


def fsync_tree(folder: str | os.PathLike) -> None:
    """Fsync every file under `folder` (a checkpoint another library wrote) and the folders."""
    for directory, _, names in os.walk(folder):
        for name in names:
            try:
                fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_directory(Path(directory))


def rewrite_in_place(path: str | os.PathLike, data: bytes) -> bool:
    """Overwrite the existing file `path` with `data` without allocating a block: only when
    `data` fits in the space the file already owns. True when written (and fsynced)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if len(data) > max(st.st_size, st.st_blocks * 512):
            return False
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
