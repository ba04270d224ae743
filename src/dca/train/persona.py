"""`dca persona-train`: SFT of reviewer personas toward external reviewers, measured before/after.

Data. External labels are any reviews file (`Review` records, e.g. from `dca review`) or a
consensus file (`Consensus`, from `dca consensus`), with the traces they review and their
problems. Each trace's target is one review: the consensus of all reviewers in the file
(majority rule) by default, or one named reviewer's review (``targets: {strict: oracle}``).
Traces are split by a hash of their id: ``held_out`` of them are never trained on and
measure agreement; the rest become SFT rows.

Rows. For each persona and training trace: the prompt is `dca.review.persona.persona_prompt`
(the policy's own prompt, the numbered units, the persona token), the completion is the
target in the persona's answer form: one protocol line per unit, without unit numbers
(``fc [uses ...] [| reason]``, ``dca-review/4`` as the persona's grammar admits it), reasons
only on error and failed_attempt units, cut to the grammar's characters and length,
dependencies mapped onto the last unit of each step depended on (at most ``max_depends``,
earlier units only); the target stops at its first uncovered unit, or its first unit whose
label has no code (``unverified``): the grammar cannot skip or write one. The loss is on completion tokens only (TRL SFTTrainer,
``completion_only_loss``, through `dca.train.sft.sft_trainer`); LoRA optional (merged into
the saved checkpoint). Departure: under LoRA the persona tokens' embeddings stay at their
initialisation (PEFT adapts linear layers only); the adapter learns the behaviour.

The policy. The same weights must still solve problems when no persona token is present,
and persona SFT damages them: on the embedded model's warm start (greedy accuracy 67.2 % on
64 ``synthetic-easy`` problems), 24 steps took it to 54.7 % (all weights, learning rate 1e-4)
and to 0.0 % (LoRA, learning rate 2e-3: every prompt answered with a review; at 1e-4 LoRA
kept 64.1 % but the persona did not learn). So every run checks the policy without a persona
token before and after (`policy_check`, in ``persona_train.json`` and printed). ``replay``
mixes in the base model's own greedy solutions under their ordinary prompt (`policy_rows`);
measured at one per persona row (all weights, 24 steps) it did not help: 53.1 %, and the
persona learnt less (α 0.251 against 0.447 on 8 held-out traces). Off by default. A persona
adapter switched on only after the persona token, as in split-personality training, is the
next thing to try.

Measured on the held-out traces, for each persona, before training (the base model with the
tokens just added) and after: agreement with the target (Krippendorff's α of the two
label sets, token-weighted; `dca.agreement`), useful-unit and error-unit F1 and the first-error
F1 with the target as truth, failed reviews, reviewer tokens (prompt, answer) and seconds per
review; beside them the same cost figures of the external reviewers where their reviews
record them; and the policy itself, without a persona token, before and after (`policy_check`:
greedy accuracy on up to 32 held-out problems). Everything goes to ``persona_train.json`` in
the output checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..agreement import agreement_report
from ..consensus import build_consensus, group_reviews
from ..files import publish_dir, scratch_dir
from ..model import SamplingConfig, load_model
from ..records import Consensus, Problem, Review, Step, Trace
from ..review.base import ReviewItem
from ..review.grammar import REASON_CHARS
from ..review.protocol import CONTRIBUTION_CODES, FUNCTION_CODES, REASONED
from ..review.persona import PERSONA_PARAMS, Persona, PersonaReviewer, add_persona_tokens, persona_prompt, save_persona_checkpoint
from ..rollout import render_prompt, rollout, summarize
from .sft import SFTSettings, loss_logger, sft_trainer

__all__ = ["PersonaTrainSettings", "Target", "measure_personas", "persona_rows", "policy_check", "policy_rows", "run_persona_train", "targets_from_labels"]

_REASON = re.compile(REASON_CHARS)
_CODE = {name: code for code, name in (FUNCTION_CODES | CONTRIBUTION_CODES).items()}


@dataclass(kw_only=True)
class PersonaTrainSettings:
    """What `dca persona-train` does besides the SFT settings."""

    held_out: float = 0.25
    """Share of traces kept out of training to measure agreement (by a hash of the id)."""
    targets: dict[str, str] = field(default_factory=dict)
    """Persona -> reviewer whose reviews it learns; 'consensus' (the default) for the majority
    consensus of every reviewer in the labels file."""
    measure: bool = True
    """Measure agreement on the held-out traces before and after training."""
    max_measure: int | None = None
    """At most this many held-out traces are reviewed per measurement (None: all)."""
    replay: float = 0.0
    """Policy rows per persona row (`policy_rows`): the base model's own greedy solution of a
    training trace's problem, under its ordinary prompt (no persona token), meant to keep the
    policy solving where no persona token is present. 0 (the default): persona rows only.
    Measured, 1 did not keep the policy (see the module docstring)."""
    replay_tokens: int = 160
    """Longest replayed solution (and policy check), in tokens."""

    def __post_init__(self) -> None:
        if not 0 < self.held_out < 1:
            raise ValueError("held_out must be between 0 and 1 (a share of the traces)")
        if not 0 <= self.replay <= 10:
            raise ValueError("replay must be between 0 and 10 (policy rows per persona row)")
        if self.replay_tokens < 1:
            raise ValueError("replay_tokens must be at least 1")


@dataclass(kw_only=True)
class Target:
    """One trace with its problem and the review a persona should write."""

    problem: Problem
    trace: Trace
    review: Review


def _consensus_review(consensus: Consensus) -> Review:
    covered = {i for s in consensus.steps for i in range(s.first_unit, s.last_unit + 1)}
    return Review(trace_id=consensus.trace_id, reviewer="consensus", units=consensus.units, steps=consensus.steps,
                  unreviewed_units=[u.index for u in consensus.units if u.index not in covered])  # fmt: skip


def targets_from_labels(labels: list[Review] | list[Consensus], traces: list[Trace], problems: list[Problem], target: str = "consensus") -> list[Target]:
    """One target per trace that has usable labels (see the module docstring); raises
    ValueError when a named reviewer is missing or the labels name unknown traces."""
    trace_of = {t.id: t for t in traces}
    problem_of = {p.id: p for p in problems}
    reviews: dict[str, Review] = {}
    if labels and isinstance(labels[0], Consensus):
        if target != "consensus":
            raise ValueError(f"a consensus file has no reviewer {target!r}; give a reviews file to learn one reviewer")
        reviews = {c.trace_id: _consensus_review(c) for c in labels if c.steps}  # type: ignore[union-attr]
    else:
        names = {r.reviewer for r in labels}  # type: ignore[union-attr]
        if target != "consensus" and target not in names:
            raise ValueError(f"the labels hold no reviews by {target!r}; reviewers are {', '.join(sorted(names))}")
        for trace_id, group in group_reviews(labels).items():  # type: ignore[arg-type]
            if target == "consensus":
                review = _consensus_review(build_consensus(group))
            else:
                review = next((r for r in group if r.reviewer == target), None)
            if review is not None and review.status == "ok" and review.steps:
                reviews[trace_id] = review
    missing = sorted(t for t in reviews if t not in trace_of or trace_of[t].problem_id not in problem_of)
    if missing:
        raise ValueError(f"{len(missing)} labelled trace(s) (e.g. {missing[0]!r}) are not in the traces file or lack their problem")
    return [Target(problem=problem_of[trace_of[t].problem_id], trace=trace_of[t], review=r) for t, r in reviews.items()]


def is_held_out(trace_id: str, share: float) -> bool:
    return int(hashlib.sha256(trace_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def _clean_reason(reason: str, limit: int) -> str:
    return "".join(ch for ch in reason if _REASON.fullmatch(ch))[:limit].rstrip()


def persona_answer(review: Review, *, max_reason_chars: int = PERSONA_PARAMS["max_reason_chars"], max_depends: int = PERSONA_PARAMS["max_depends"]) -> str:
    """`review` as the persona writes it: one line per unit, up to the first unit that is
    uncovered or labelled without a code."""
    step_of: dict[int, Step] = {i: s for s in review.steps for i in range(s.first_unit, s.last_unit + 1)}
    lines = []
    for unit in review.units:
        step = step_of.get(unit.index)
        if step is None or step.function not in _CODE or step.contribution not in _CODE:
            break
        uses = sorted({review.steps[d].last_unit for d in step.depends_on if review.steps[d].last_unit < unit.index})[-max_depends:] if max_depends else []
        reason = _clean_reason(step.reason, max_reason_chars) if step.contribution in REASONED else ""
        line = _CODE[step.function] + _CODE[step.contribution] + "".join(f" {u}" for u in uses)
        lines.append(line + (f" | {reason}" if reason else ""))
    return "".join(line + "\n" for line in lines)


def persona_rows(targets: list[Target], personas: list[Persona], tokenizer: Any, targets_by_persona: dict[str, list[Target]] | None = None) -> list[dict]:
    """SFT rows (TRL's standard prompt-completion format) for every persona and target."""
    rows = []
    for persona in personas:
        for t in (targets_by_persona or {}).get(persona.name, targets):
            answer = persona_answer(t.review)
            if answer:
                rows.append({"prompt": persona_prompt(tokenizer, t.problem, t.review.units, persona), "completion": answer})
    return rows


def _greedy(model: Any, tokenizer: Any, problems: list[Problem], max_new_tokens: int) -> list[Trace]:
    return rollout(model, tokenizer, problems, SamplingConfig(max_new_tokens=max_new_tokens, batch_size=16))


def policy_rows(model: Any, tokenizer: Any, problems: list[Problem], count: int, max_new_tokens: int) -> list[dict]:
    """`count` SFT rows of the policy's own behaviour: its ordinary prompt for a problem
    (`dca.rollout.render_prompt`, no persona token) and its own greedy completion, cycling over
    `problems` (distinct ones first). Mixed into persona training, they ask the weights that
    serve both roles to keep solving when no persona token asks for a review (measured at one
    per persona row, they did not suffice: see the module docstring)."""
    if count <= 0 or not problems:
        return []
    chosen = [problems[i % len(problems)] for i in range(min(count, len(problems)))]
    solved = _greedy(model, tokenizer, chosen, max_new_tokens)
    rows = [{"prompt": render_prompt(tokenizer, p), "completion": t.completion} for p, t in zip(chosen, solved) if t.completion]
    return [rows[i % len(rows)] for i in range(count)] if rows else []


def policy_check(model: Any, tokenizer: Any, problems: list[Problem], max_new_tokens: int) -> dict:
    """Greedy accuracy and format failures of the policy (no persona token) on `problems`."""
    traces = _greedy(model, tokenizer, problems, max_new_tokens)
    figures = summarize(traces)
    return {"problems": len(problems), "accuracy": figures["accuracy"], "format_failures": figures["format_failures"], "mean_tokens": figures["mean_tokens"]}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def measure_personas(model: Any, tokenizer: Any, personas: list[Persona], targets_by_persona: dict[str, list[Target]], *, log: Callable[[str], None] = print) -> dict:
    """Each persona's agreement with its targets on their traces (see the module docstring)."""
    figures = {}
    for persona in personas:
        targets = targets_by_persona[persona.name]
        reviewer = PersonaReviewer(f"persona-{persona.name}", persona, model, tokenizer)
        started = time.perf_counter()
        reviews = reviewer.review_items([ReviewItem(problem=t.problem, trace=t.trace, units=t.review.units) for t in targets])
        seconds = time.perf_counter() - started
        truth = [dataclasses.replace(t.review, reviewer="target") for t in targets]
        report = agreement_report(reviews + truth, truth="target")
        quality = report["truth"]["reviewers"][reviewer.name]
        ok = [r for r in reviews if r.status == "ok"]
        figures[persona.name] = {
            "traces": len(targets),
            "failed": len(reviews) - len(ok),
            "alpha": report["labels"]["alpha"],
            "observed": report["labels"]["observed"],
            "useful_f1": quality["useful"]["f1"],
            "error_f1": quality["error"]["f1"],
            "first_error_f1": quality["first_error"]["f1"],
            "input_tokens_per_review": _mean([r.usage.get("input_tokens", 0) for r in reviews]),
            "output_tokens_per_review": _mean([r.usage.get("output_tokens", 0) for r in reviews]),
            "seconds_per_review": seconds / len(reviews) if reviews else None,
        }
        log(f"  persona {persona.name}: alpha {_fmt(figures[persona.name]['alpha'])}  useful F1 {_fmt(quality['useful']['f1'])}  "
            f"error F1 {_fmt(quality['error']['f1'])}  {figures[persona.name]['output_tokens_per_review'] or 0:.0f} answer tokens, "
            f"{figures[persona.name]['seconds_per_review'] or 0:.2f} s per review")  # fmt: skip
    return figures


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def external_costs(labels: list[Review] | list[Consensus], trace_ids: set[str]) -> dict:
    """Per external reviewer, on the given traces: answer tokens and seconds per review (where
    its reviews record them; programmatic reviewers record 0 tokens)."""
    result: dict[str, dict] = {}
    for review in labels:
        if not isinstance(review, Review) or review.trace_id not in trace_ids:
            continue
        entry = result.setdefault(review.reviewer, {"reviews": 0, "input_tokens": 0.0, "output_tokens": 0.0, "seconds": 0.0, "timed": 0})
        entry["reviews"] += 1
        entry["input_tokens"] += review.usage.get("input_tokens", 0)
        entry["output_tokens"] += review.usage.get("output_tokens", 0)
        if "seconds" in review.usage:
            entry["seconds"] += review.usage["seconds"]
            entry["timed"] += 1
    return {
        name: {
            "reviews": e["reviews"],
            "input_tokens_per_review": e["input_tokens"] / e["reviews"],
            "output_tokens_per_review": e["output_tokens"] / e["reviews"],
            "seconds_per_review": e["seconds"] / e["timed"] if e["timed"] else None,
        }
        for name, e in sorted(result.items())
    }


def run_persona_train(
    labels: list[Review] | list[Consensus],
    traces: list[Trace],
    problems: list[Problem],
    personas: list[Persona],
    model: str,
    out: str | os.PathLike,
    settings: SFTSettings,
    persona_settings: PersonaTrainSettings,
    *,
    log: Callable[[str], None] = print,
) -> dict:
    """Add the persona tokens to `model`, SFT them toward the labels, save the checkpoint to
    `out` (whole or not at all) and return the summary written to ``out/persona_train.json``."""
    targets_by_persona: dict[str, list[Target]] = {}
    for persona in personas:
        targets_by_persona[persona.name] = targets_from_labels(labels, traces, problems, persona_settings.targets.get(persona.name, "consensus"))
    train = {name: [t for t in ts if not is_held_out(t.trace.id, persona_settings.held_out)] for name, ts in targets_by_persona.items()}
    held = {name: [t for t in ts if is_held_out(t.trace.id, persona_settings.held_out)][: persona_settings.max_measure] for name, ts in targets_by_persona.items()}
    if not any(train.values()):
        raise ValueError("no labelled trace is left for training; label more traces or lower held_out")

    out = Path(out)
    losses: list[dict] = []
    progress = loss_logger("persona-train", settings.max_steps, log, losses)

    with scratch_dir(out) as scratch:
        base, tokenizer = load_model(model)
        add_persona_tokens(base, tokenizer, personas)
        held_count = {name: len(ts) for name, ts in held.items()}
        summary: dict[str, Any] = {
            "base_model": model,
            "personas": [asdict(p) for p in personas],
            "targets": {p.name: persona_settings.targets.get(p.name, "consensus") for p in personas},
            "settings": asdict(settings),
            "persona_settings": asdict(persona_settings),
            "train_traces": {name: len(ts) for name, ts in train.items()},
            "held_out_traces": held_count,
        }
        # The policy's own greedy solutions are checked on the held-out traces' problems.
        check_problems = list({t.problem.id: t.problem for ts in targets_by_persona.values() for t in ts
                               if is_held_out(t.trace.id, persona_settings.held_out)}.values())[:32]  # fmt: skip
        if persona_settings.measure and any(held_count.values()):
            log(f"persona-train: measuring before training on {max(held_count.values())} held-out trace(s)")
            summary["before"] = measure_personas(base, tokenizer, personas, held, log=log)
            summary["policy"] = {"before": policy_check(base, tokenizer, check_problems, persona_settings.replay_tokens)}
        rows = persona_rows([], personas, tokenizer, train)
        if not rows:
            raise ValueError("no training row: every target is empty (does the first unit have a label?)")
        train_problems = list({t.problem.id: t.problem for ts in train.values() for t in ts}.values())
        replayed = policy_rows(base, tokenizer, train_problems, round(persona_settings.replay * len(rows)), persona_settings.replay_tokens)
        summary["rows"] = len(rows)
        summary["policy_rows"] = len(replayed)
        if replayed:
            log(f"persona-train: {len(replayed)} policy row(s) (its own greedy solutions, no persona token) beside {len(rows)} persona row(s)")
        rows += replayed  # the trainer shuffles the rows
        save_persona_checkpoint(base, tokenizer, personas, scratch / "base")
        del base
        trainer = sft_trainer(rows, str(scratch / "base"), scratch / "trainer", settings, callbacks=[progress])
        log(f"persona-train: {settings.max_steps} steps on {len(rows)} rows ({'LoRA' if settings.lora else 'all weights'})")
        trainer.train()
        trained = trainer.model.merge_and_unload() if settings.lora else trainer.model
        if persona_settings.measure and any(held_count.values()):
            log("persona-train: measuring after training")
            summary["after"] = measure_personas(trained, tokenizer, personas, held, log=log)
            summary["policy"]["after"] = policy_check(trained, tokenizer, check_problems, persona_settings.replay_tokens)
            log(f"persona-train: the policy (no persona token) on {len(check_problems)} held-out problem(s): accuracy "
                f"{summary['policy']['before']['accuracy']:.1%} before, {summary['policy']['after']['accuracy']:.1%} after")  # fmt: skip
            held_ids = {t.trace.id for ts in held.values() for t in ts}
            summary["external"] = external_costs(labels, held_ids)
        summary["losses"] = losses
        shutil.rmtree(scratch / "trainer", ignore_errors=True)
        shutil.rmtree(scratch / "base", ignore_errors=True)
        save_persona_checkpoint(trained, tokenizer, personas, scratch)
        (scratch / "persona_train.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        publish_dir(scratch, out)
    return summary
