"""Verifiable puzzles from reasoning-gym (Apache-2.0), scored by reasoning-gym's own scorers.

reasoning-gym's procedural datasets are deterministic given (name, seed, size, config): item
i is drawn from ``Random(seed + i)``. A problem keeps that address under
``metadata["reasoning_gym"]`` (``dataset``, ``seed``, ``size``, ``index``, ``config``), so the
checker rebuilds the exact entry (answer and metadata, with its original Python types) and
calls the dataset's ``score_answer(answer, entry)``. A JSON-safe copy of the entry's metadata
is kept beside it (``metadata["entry"]``) for reviewers and for the knights-and-knaves oracle.

Departures from reasoning-gym's own evaluation:

- the answer is read from the completion's last ``Answer: ...`` line (`dca.problems.labels`),
  not from ``<answer>`` tags; a completion without one is a format failure (reward 0);
- the reward is the scorer's value as is (some scorers give partial credit, e.g. 0.05 for a
  well-formed wrong formula); the outcome is ``correct`` only at full credit (>= 0.999);
- the rebuilt entry must have the stored question; otherwise (another reasoning-gym version
  draws other puzzles) the scorer runs on the stored answer and metadata instead.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ..records import Problem
from .answer import AnswerCheck
from .labels import extract_text_answer

#: Full credit, as a float scorer reports it.
FULL_CREDIT = 0.999


def _json_safe(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python values, other objects to strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@functools.lru_cache(maxsize=64)
def _dataset(name: str, seed: int, size: int, config_json: str):
    try:
        import reasoning_gym  # heavy: reasoning-gym (matplotlib, sympy) loads only for its domains
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("reasoning-gym is not installed: pip install reasoning-gym") from e
    return reasoning_gym.create_dataset(name, seed=seed, size=size, **json.loads(config_json))


def generate_reasoning_gym(dataset: str, domain: str, count: int, seed: int, config: dict[str, Any] | None = None) -> list[Problem]:
    """`count` problems of a reasoning-gym dataset, ids ``{domain}-s{seed}-{i:05d}``."""
    config = dict(config or {})
    config_json = json.dumps(config, sort_keys=True)
    try:
        data = _dataset(dataset, seed, max(count, 1), config_json)
    except (TypeError, AssertionError, ValueError, KeyError) as e:
        raise ValueError(f"reasoning-gym {dataset}: bad options {config} ({e})") from e
    problems = []
    for index in range(count):
        entry = data[index]
        answer = entry.get("answer")
        metadata = _json_safe(entry.get("metadata", {}))
        if answer is None:  # e.g. propositional_logic: any valid conclusion scores
            answer = str(metadata.get("example_answer", ""))
        problems.append(
            Problem(
                id=f"{domain}-s{seed}-{index:05d}",
                source=f"reasoning-gym/{dataset}",
                question=entry["question"],
                answer=str(answer),
                domain=domain,
                metadata={
                    "reasoning_gym": {"dataset": dataset, "seed": seed, "size": max(count, 1), "index": index, "config": config},
                    "entry": metadata,
                },
            )
        )
    return problems


def _entry(problem: Problem) -> tuple[Any, dict[str, Any]]:
    """(dataset, entry) for a problem: rebuilt when it matches, else from the stored copy."""
    address = problem.metadata["reasoning_gym"]
    data = _dataset(address["dataset"], address["seed"], address["size"], json.dumps(address.get("config", {}), sort_keys=True))
    entry = data[address["index"]]
    if entry["question"] != problem.question:
        entry = {"question": problem.question, "answer": problem.answer, "metadata": problem.metadata.get("entry", {})}
    return data, entry


def check_reasoning_gym(problem: Problem, completion: str) -> AnswerCheck:
    """The reasoning-gym scorer's verdict on the completion's final ``Answer:`` line."""
    found = extract_text_answer(completion)
    if found.answer is None:
        return AnswerCheck(answer=None, form=None, span=None, outcome="format_failure", reward=0.0)
    try:
        data, entry = _entry(problem)
        score = float(data.score_answer(found.answer, entry))
    except Exception:  # noqa: BLE001 - a scorer that raises on model text scores nothing
        score = 0.0
    return AnswerCheck(
        answer=found.answer, form=found.form, span=found.span,
        outcome="correct" if score >= FULL_CREDIT else "wrong", reward=score,
    )  # fmt: skip
