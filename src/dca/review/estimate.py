"""What a run's reviews will cost, before it runs (`dca review --estimate`, `dca train --estimate`).

For every declared reviewer that calls a model (``openai``, ``anthropic``, ``hf``) the estimate
builds the real review prompt (`protocol.build_messages`) for a sample of the completions it
will review, counts its tokens, and takes as the expected answer the line-protocol answer a
good reviewer gives (the reference reviewer's review of the same completion, reasons cut to
five words, as in `benchmarks/review_tokens.py`), rendered in the reviewer's answer format.
Calls, mean tokens per call and their totals follow; the cost uses the price the reviewers
YAML declares for that reviewer (``price: {input, output}``, USD per million tokens). No
price is built in: a reviewer without one shows tokens only.

Tokens are counted as characters / `CHARS_PER_TOKEN` (4, the usual figure for English BPE
vocabularies: within about 15 % of GPT-4o's and Claude's tokenizers on review prompts,
which are English with digits); the provider's tokenizer is not available offline. Repair
turns, retries and dialogue questions are not in the estimate (a run's summary counts them).

A backend whose host cannot be reached (a TCP connection within `PROBE_SECONDS`) is still
estimated in tokens; its price is reported unknown, since the run could not be made as
configured. Programmatic reviewers (oracle, reference, ...) make no calls and cost nothing.
"""

from __future__ import annotations

import socket
import statistics
import sys
from typing import Any, Sequence
from urllib.parse import urlparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..llm import LLM_BACKENDS
from ..records import Step
from .base import ReviewItem
from .config import ReviewerSpec
from .protocol import answer_json, answer_lines, build_messages
from .reference import ReferenceReviewer

__all__ = ["CHARS_PER_TOKEN", "estimate_reviews", "expected_answer", "text_tokens"]

CHARS_PER_TOKEN = 4.0
PROBE_SECONDS = 3.0
_DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


def text_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def message_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of a chat request: its texts plus 4 per message (role and separators)."""
    return sum(text_tokens(str(m.get("content", ""))) + 4 for m in messages)


def expected_answer(item: ReviewItem, answer_format: str) -> str:
    """The answer a good reviewer gives for `item`: the reference reviewer's steps (the
    problem's reference solution or known structure), else one step per unit."""
    review = ReferenceReviewer().review(item.problem, item.trace.completion, item.units, trace_id=item.trace.id)
    steps = review.steps if review.status == "ok" else [
        Step(index=u.index, first_unit=u.index, last_unit=u.index, function="computation", contribution="essential", reason="computes a value")
        for u in item.units
    ]  # fmt: skip
    for step in steps:
        step.reason = " ".join(step.reason.split()[:5])
    return answer_lines(steps) if answer_format == "lines" else answer_json(steps)


def reachable(spec: ReviewerSpec) -> bool | None:
    """Whether the backend's host accepts a TCP connection (None: a local model, no host)."""
    if spec.backend == "hf":
        return None
    url = urlparse(spec.base_url or _DEFAULT_URLS[spec.backend])
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def estimate_reviews(
    sample: Sequence[ReviewItem], specs: Sequence[ReviewerSpec], *, calls: int, probe: bool = True
) -> dict[str, Any]:
    """Per reviewer: calls, mean input/output tokens per call (over `sample`), totals and cost;
    ``calls`` is how many completions each reviewer will review."""
    rows: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.backend not in LLM_BACKENDS:
            rows[spec.name] = {"backend": spec.backend, "calls": 0, "note": "no model calls"}
            continue
        inputs = [
            message_tokens(build_messages(
                item.problem, item.trace, item.units,
                mode=spec.mode, answer_format=spec.answer_format, show_reference_answer=spec.show_reference_answer,
            ))
            for item in sample
        ]  # fmt: skip
        answer_format = "json" if spec.mode == "quotes" else spec.answer_format
        outputs = [text_tokens(expected_answer(item, answer_format)) for item in sample]
        per_input = statistics.mean(inputs) if inputs else 0.0
        per_output = statistics.mean(outputs) if outputs else 0.0
        row: dict[str, Any] = {
            "backend": spec.backend,
            "model": spec.model,
            "calls": calls,
            "input_tokens_per_call": round(per_input, 1),
            "output_tokens_per_call": round(per_output, 1),
            "input_tokens": round(per_input * calls),
            "output_tokens": round(per_output * calls),
            "cost_usd": None,
        }
        up = reachable(spec) if probe else None
        if up is False:
            row["note"] = f"backend {spec.base_url or _DEFAULT_URLS[spec.backend]} unreachable: tokens estimated, price unknown"
            print(f"reviewer {spec.name}: {row['note']}", file=sys.stderr)
        elif "price" not in spec.model_fields_set:
            row["note"] = "no price declared: tokens only"
        else:
            row["cost_usd"] = round(spec.price.cost(row["input_tokens"], row["output_tokens"]), 6)
        rows[spec.name] = row
    priced = [r["cost_usd"] for r in rows.values() if r.get("calls")]
    total = {
        "calls": sum(r["calls"] for r in rows.values()),
        "input_tokens": sum(r.get("input_tokens", 0) for r in rows.values()),
        "output_tokens": sum(r.get("output_tokens", 0) for r in rows.values()),
        "cost_usd": round(sum(priced), 6) if all(c is not None for c in priced) else None,
        "sample": len(sample),
    }
    return {"reviewers": rows, "total": total}


def sum_estimates(estimates: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' estimates as one (an experiment's arms x seeds): calls, tokens and costs
    add up per reviewer (a cost is known when every part's is); per-call means follow."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for estimate in estimates:
        for name, row in estimate["reviewers"].items():
            parts.setdefault(name, []).append(row)
    rows: dict[str, dict[str, Any]] = {}
    for name, found in parts.items():
        row = dict(found[0])
        if row.get("calls"):
            for field in ("calls", "input_tokens", "output_tokens"):
                row[field] = sum(r[field] for r in found)
            row["input_tokens_per_call"] = round(row["input_tokens"] / row["calls"], 1)
            row["output_tokens_per_call"] = round(row["output_tokens"] / row["calls"], 1)
            costs = [r["cost_usd"] for r in found]
            row["cost_usd"] = round(sum(costs), 6) if all(c is not None for c in costs) else None
        rows[name] = row
    costs = [e["total"]["cost_usd"] for e in estimates]
    total = {field: sum(e["total"][field] for e in estimates) for field in ("calls", "input_tokens", "output_tokens", "sample")}
    total["cost_usd"] = round(sum(costs), 6) if all(c is not None for c in costs) else None
    total["runs"] = len(estimates)
    return {"reviewers": rows, "total": total}


def print_estimate(estimate: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("reviewer", "calls", "in tokens / call", "out tokens / call", "in tokens", "out tokens", "cost $", "note"):
        table.add_column(column, justify="left" if column in ("reviewer", "note") else "right")
    for name, r in [*estimate["reviewers"].items(), ("total", estimate["total"])]:
        cost = "unknown" if r.get("cost_usd") is None else f"{r['cost_usd']:.4f}"
        table.add_row(
            escape(name), str(r["calls"]), str(r.get("input_tokens_per_call", "")), str(r.get("output_tokens_per_call", "")),
            str(r.get("input_tokens", 0)), str(r.get("output_tokens", 0)), cost if r.get("calls") else "0", escape(r.get("note", "")),
        )  # fmt: skip
    Console(width=160).print(table)
