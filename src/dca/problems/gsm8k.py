"""GSM8K problems from its JSON-lines files (fields ``question`` and ``answer``).

A GSM8K answer is a solution, one reasoning line per line with calculator annotations
``<<48/2=24>>``, then a last line ``#### 72``. Each solution line becomes a `ReferenceStep`
(annotations removed, expressions and values kept); `Problem.intermediate_values` lists
every annotated value in order, then the final answer when the last annotation is not
already it. Malformed input raises ValueError naming the file and line.

Where the files are: ``load_gsm8k("train")`` / ``load_gsm8k("test")`` look in the directory
named by the ``DCA_GSM8K_DIR`` environment variable, else in ``../shared/data/gsm8k``
relative to the current directory, else relative to the project root (found from this
file's location); any other argument is a path to a JSON-lines file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import UserError
from ..records import Problem, ReferenceStep

SPLITS = ("train", "test")
DATA_DIR_VARIABLE = "DCA_GSM8K_DIR"

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_FRACTION = re.compile(r"(-?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)")


def load_gsm8k(path_or_split: str, limit: int | None = None) -> list[Problem]:
    """Problems from a split name (``"train"``/``"test"``) or a JSON-lines file, at most
    `limit` of them."""
    path = _resolve(path_or_split)
    name = path.stem if path_or_split not in SPLITS else path_or_split
    problems = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and len(problems) >= limit:
                break
            if not line.strip():
                continue
            problems.append(_problem(line, f"gsm8k-{name}-{len(problems):05d}", path, lineno))
    return problems


def default_data_dir() -> Path:
    """The directory holding ``train.jsonl`` and ``test.jsonl`` (see the module docstring)."""
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE])
    candidates = [
        Path.cwd() / ".." / "shared" / "data" / "gsm8k",
        Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "gsm8k",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise UserError(
        f"GSM8K data not found (looked in {', '.join(str(c) for c in candidates)}); "
        f"set {DATA_DIR_VARIABLE} to the directory holding train.jsonl and test.jsonl"
    )


def _resolve(path_or_split: str) -> Path:
    if path_or_split in SPLITS:
        path = default_data_dir() / f"{path_or_split}.jsonl"
    else:
        path = Path(path_or_split)
    if not path.is_file():
        raise UserError(f"GSM8K file {path} does not exist; pass 'train', 'test' or a .jsonl path")
    return path


def _problem(line: str, problem_id: str, path: Path, lineno: int) -> Problem:
    where = f"{path}:{lineno}"
    try:
        record = json.loads(line)
        question, solution = record["question"], record["answer"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{where}: not a GSM8K record with 'question' and 'answer' ({e})") from e
    *lines, final = [text for text in solution.split("\n") if text.strip()] or [""]
    if not final.startswith("####"):
        raise ValueError(f"{where}: the solution does not end with a '#### <answer>' line")
    answer = final[4:].strip().replace(",", "")
    if not answer:
        raise ValueError(f"{where}: the '####' line holds no answer")
    steps = [_reference_step(text, where) for text in lines]
    values = [value for step in steps for value in step.values]
    if _number(answer) is not None and (not values or values[-1] != _number(answer)):
        values.append(_number(answer))
    return Problem(
        id=problem_id,
        source="gsm8k",
        question=question,
        answer=answer,
        intermediate_values=values,
        reference_steps=steps,
        domain="gsm8k",
        metadata={"file": str(path), "line": lineno},
    )


def _reference_step(text: str, where: str) -> ReferenceStep:
    """A solution line with its ``<<expression=value>>`` annotations parsed out."""
    if text.count("<<") != text.count(">>"):
        raise ValueError(f"{where}: unbalanced '<<'/'>>' in solution line {text!r}")
    expressions, values = [], []
    for match in _ANNOTATION.finditer(text):
        expression, equals, result = match.group(1).rpartition("=")
        value = _number(result.strip().replace(",", ""))
        if not equals or value is None:
            raise ValueError(f"{where}: annotation <<{match.group(1)}>> is not 'expression=number'")
        expressions.append(expression)
        values.append(value)
    return ReferenceStep(
        text=_ANNOTATION.sub("", text).strip(), expressions=expressions, values=values
    )


def _number(text: str) -> float | None:
    """A plain number or a fraction (one GSM8K annotation reads ``<<3/4=3/4>>``)."""
    try:
        return float(text)
    except ValueError:
        fraction = _FRACTION.fullmatch(text)
        if fraction and float(fraction.group(2)) != 0:
            return float(fraction.group(1)) / float(fraction.group(2))
        return None
