"""Exception types: a caller's mistake versus a failure while running.

`UserError` means the input is wrong (missing file, bad config, unknown model); the CLI prints
its message as one line and exits with code 2. Anything else is a bug or a run failure and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user; the message says what is wrong and what to do."""


class Terminated(BaseException):
    """The process got SIGTERM while writing a run; raised by the run's signal handler so that
    its status is recorded (a BaseException, like KeyboardInterrupt: nothing should catch it)."""


def validation_problem(error, *, top: str = "(top level)", loc: list | None = None) -> str:
    """The first problem of a pydantic ``ValidationError`` as one line, ``where: message``:
    `where` is its field path (`loc` replaces it when given; `top` when it is empty), and the
    message loses pydantic's ``Value error,`` prefix (the validators' own words stay)."""
    first = error.errors()[0]
    path = list(first["loc"]) if loc is None else loc
    where = ".".join(str(p) for p in path) or top
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"
