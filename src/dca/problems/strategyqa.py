"""Common-sense yes/no questions in the StrategyQA format (Geva et al. 2021).

StrategyQA's files (``strategyqa_train.json``) are one JSON array of records with the fields
``qid``, ``term``, ``description``, ``question``, ``answer`` (a boolean), ``facts`` (the
facts a solver needs, as sentences) and ``decomposition`` (the sub-questions of the implicit
reasoning strategy); other fields (``evidence``) are ignored. A JSON-lines file with the
same fields is read too. Every record becomes a `Problem` of domain ``commonsense`` with the
answer ``Yes`` or ``No``; ``metadata`` keeps ``qid``, ``term``, ``description``,
``decomposition`` and the facts as ``reference_facts``, which reviewers are shown as
reference (`dca.review.protocol`).

Where the file is: `load_strategyqa(None)` reads ``$DCA_STRATEGYQA_FILE``, else
``../shared/data/strategyqa/strategyqa_train.json``; otherwise a path. The test split has no
answers and cannot be loaded for training or evaluation (a ValueError says so).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import UserError, validation_problem
from ..records import Problem

FILE_VARIABLE = "DCA_STRATEGYQA_FILE"
DEFAULT_FILE = Path("..") / "shared" / "data" / "strategyqa" / "strategyqa_train.json"


class StrategyQARecord(BaseModel):
    """One StrategyQA record (the dataset's own field names)."""

    model_config = ConfigDict(extra="ignore")

    qid: str
    term: str = ""
    description: str = ""
    question: str
    answer: bool
    facts: list[str] = []
    decomposition: list[str] = []


def default_file() -> Path:
    if os.environ.get(FILE_VARIABLE):
        return Path(os.environ[FILE_VARIABLE])
    if DEFAULT_FILE.is_file():
        return DEFAULT_FILE.resolve()
    raise UserError(
        f"StrategyQA data not found at {DEFAULT_FILE}; set {FILE_VARIABLE} or pass a file "
        "(e.g. --file strategyqa_train.json; see the README for the download)"
    )


def load_strategyqa(path: str | os.PathLike | None = None, limit: int | None = None) -> list[Problem]:
    """Problems from a StrategyQA JSON array (or JSON-lines) file, at most `limit`."""
    path = Path(path) if path is not None else default_file()
    if not path.is_file():
        raise UserError(f"StrategyQA file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("["):
            raw = json.loads(text)
            where = [f"{path}: record {i}" for i in range(len(raw))]
        else:
            lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            raw = [json.loads(line) for _, line in lines]
            where = [f"{path}:{n}" for n, _ in lines]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a StrategyQA JSON array or JSON-lines file ({e})") from e
    problems = []
    for record, location in zip(raw, where):
        if limit is not None and len(problems) >= limit:
            break
        if isinstance(record, dict) and "answer" not in record:
            raise ValueError(f"{location}: no 'answer' field (StrategyQA's test split is unlabelled; use the train file)")
        try:
            item = StrategyQARecord.model_validate(record)
        except ValidationError as e:
            raise ValueError(f"{location}: not a StrategyQA record ({validation_problem(e)})") from e
        problems.append(
            Problem(
                id=f"strategyqa-{item.qid}",
                source="strategyqa",
                question=item.question,
                answer="Yes" if item.answer else "No",
                domain="commonsense",
                metadata={
                    "qid": item.qid, "term": item.term, "description": item.description,
                    "decomposition": item.decomposition, "reference_facts": item.facts, "file": str(path),
                },  # fmt: skip
            )
        )
    return problems
