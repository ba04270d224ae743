"""What every command group shares: logging, output checks, argument types and record reading."""

from __future__ import annotations

import argparse
import copy
import math
import warnings
from pathlib import Path

from ..files import check_output_file, read_records, write_text_atomic


def _log(message: str) -> None:
    print(message, flush=True)


def _quiet_libraries() -> None:
    """Keep the terminal for DCA's own progress lines: no per-library progress bars."""
    import datasets  # heavy: only commands that load a model silence these
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()


def _out_file(path: str, args: argparse.Namespace | None = None, *inputs: str | None, flag: str = "--out") -> Path:
    """An output file that may be written: refused when it exists (without --overwrite) or is
    one of the command's inputs."""
    return check_output_file(path, overwrite=getattr(args, "overwrite", False), inputs=inputs, flag=flag)


def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def _count(minimum: int):
    """An argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def _number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None):
    """An argparse type: a finite number in [minimum, maximum] (or > `above`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be greater than {above:g}, got {value:g}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def _read_records(path: str, cls, what: str) -> list:
    return read_records(path, cls, what=what)


def _beside(path: str, name: str, given: str | None) -> str | None:
    """`given`, else the file `name` next to `path` when it exists (a run directory's layout)."""
    if given is not None:
        return given
    candidate = Path(path).parent / name
    return str(candidate) if candidate.is_file() else None


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's default in --help, options without help text included."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        return bool(action.option_strings) and default is not None and default is not False and default != argparse.SUPPRESS and default != []

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if self._shows_default(action) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse prints usage too; keep it short)
        self.exit(2, f"dca: error: {message}\n")
