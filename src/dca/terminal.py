"""Tables that fit the terminal: `console` is a rich Console as wide as the terminal, or, when
the output is not a terminal (a log file, a pipe), as wide as ``$COLUMNS`` or `wide`, so that a
logged table is not wrapped at 80 columns."""

from __future__ import annotations

import os
import sys


def console(wide: int = 160, *, stderr: bool = False):
    from rich.console import Console  # start-up: rich loads only when a table is printed

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)  # the terminal's own width
    columns = os.environ.get("COLUMNS", "")
    return Console(stderr=stderr, width=int(columns) if columns.isdigit() and int(columns) > 0 else wide)
