"""Edited chains of thought: cut the steps reviewers found useless out of a solved trace.

The second way DESIGN.md uses a review: instead of crediting tokens, edit a *solved* trace
and fine-tune on the edited CoT (`dca.train.sft`). An `Edit` is a pure function of a trace,
its problem and its labels (a `Consensus`, or a single `Review`):

1. **What is dropped.** Steps whose contribution is in ``drop`` (default: ``irrelevant``
   and ``failed_attempt``). Everything else is kept: steps labelled solved / essential /
   indirect (given facts, the task), ``error`` steps (dropping them is possible with
   ``drop``, but it can leave a later step without its premise), disputed and unreviewed
   units, and always the units of the final-answer statement.
2. **Dependencies.** A step that a kept step depends on is never dropped: the drop is
   *refused*, the step kept and counted (`Edit.refused_steps`); this repeats until no kept
   step depends on a dropped one.
3. **Joining** (`mode`), over maximal runs of dropped units:
   - ``drop``: the runs are removed; whitespace is repaired (a run at the start takes its
     leading whitespace with it; a line break inside the gap survives), and so are
     sentence boundaries (a kept clause left ending in ``,``/``;`` before a gap that ended a
     sentence gets a full stop; a kept clause that now opens a sentence is capitalised);
   - ``bridge-template``: as ``drop``, plus a short templated sentence (`BRIDGE_TEMPLATES`,
     chosen by what was dropped) between two kept sentences;
   - ``bridge-llm``: as ``bridge-template``, but the sentence comes from a `BridgeWriter`
     (`LLMBridgeWriter`: a reviewer backend from `dca.review`) asked for one sentence that
     cites what the kept step before found. `validate_bridge` rejects an empty or
     multi-sentence answer, one longer than `max_bridge_chars`, one that states an answer,
     and one with a number found neither in the kept text nor in the problem; a rejected
     or failed bridge falls back to the template and the reason is recorded.
   No bridge is put before the final-answer statement (it needs no lead-in) or inside a
   sentence (a gap between two clauses of one sentence is only joined).
4. **The final answer never changes**: after joining, the edited completion's extracted
   answer must equal the original's, else the edit is refused as a whole (status
   ``unchanged``, with the reason).

Baselines (`arm`), built by the same function so that their figures compare directly:
``rft`` keeps the solved trace unedited (rejection-sampling fine-tuning, STaR), and
``random-drop`` drops as many units as the reviewer-guided edit dropped, chosen uniformly
(seeded per trace) among all units but the final-answer statement, ignoring labels and
dependencies: the control for "any shortening helps".

Only solved traces (outcome ``correct``) are edited; other traces, traces without usable
labels and traces whose labels spell another text get an `Edit` with status ``skipped``
and the reason, so that nothing is dropped silently. `edit_figures` sums an edit set:
tokens per trace before and after, the fraction of units dropped, bridges, refused
drops, and tokens per insight (CoT tokens ÷ useful steps, the steps labelled with a
`USEFUL_CONTRIBUTIONS` label; an edit never drops one, so the count is the same before and
after).

Everything but `LLMBridgeWriter` is pure and has no dependency on torch.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .domains import chat_messages
from .llm import LLMCallFailed, LLMClient
from .measures import numbers, tokens_per_insight, useful_steps, word_token_count
from .problems.answer import extract_answer
from .records import CONTRIBUTIONS, Consensus, Edit, EditSpan, Problem, Review, Step, Trace, Unit  # noqa: F401 - Edit, EditSpan re-exported (they live in records)

__all__ = [
    "ARMS",
    "BRIDGE_TEMPLATES",
    "DEFAULT_DROP",
    "MODES",
    "BridgeContext",
    "BridgeWriter",
    "Edit",
    "EditConfig",
    "EditSpan",
    "LLMBridgeWriter",
    "edit_figures",
    "edit_trace",
    "edit_traces",
    "validate_bridge",
    "word_token_count",
]

#: How the kept parts are joined.
MODES = ("drop", "bridge-template", "bridge-llm")
#: What is trained on: the reviewer-guided edit, the unedited solved trace, a random drop.
ARMS = ("edit", "rft", "random-drop")
#: Contributions dropped by default.
DEFAULT_DROP = ("irrelevant", "failed_attempt")
#: Bridges by what the gap held: a failed attempt, only irrelevant steps, anything else.
BRIDGE_TEMPLATES = {
    "failed_attempt": "That approach does not lead to the answer, so go on with the facts that do.",
    "irrelevant": "The other details do not matter for the question.",
    "other": "Go on with what the question needs.",
}

_TERMINATOR = re.compile(r"[.!?…][\"'”’»)\]]*$")
_CLAUSE_END = re.compile(r"[,;:]$")
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_SENTENCE_INSIDE = re.compile(r"[.!?](?=\s+\S)")


# ---------------------------------------------------------------------------------------------
# Configuration (the `Edit` and `EditSpan` records live in `dca.records`)


@dataclass(kw_only=True)
class EditConfig:
    """How to edit (see the module docstring)."""

    arm: str = "edit"
    mode: str = "bridge-template"
    drop: tuple[str, ...] = DEFAULT_DROP
    """Contributions whose steps are dropped."""
    max_bridge_chars: int = 160
    seed: int = 0
    """Seeds the ``random-drop`` arm (mixed with each trace id)."""

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; use one of {', '.join(ARMS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown edit mode {self.mode!r}; use one of {', '.join(MODES)}")
        unknown = sorted(set(self.drop) - set(CONTRIBUTIONS))
        if unknown:
            raise ValueError(f"cannot drop unknown contribution(s) {unknown}; choose from {', '.join(CONTRIBUTIONS)}")
        useful = sorted(set(self.drop) & {"solved", "essential"})
        if useful:
            raise ValueError(f"dropping {useful} steps would cut the solution itself; drop irrelevant, failed_attempt, error or indirect steps")
        if self.max_bridge_chars < 10:
            raise ValueError("max_bridge_chars must be at least 10")


# ---------------------------------------------------------------------------------------------
# Bridges


@dataclass(kw_only=True)
class BridgeContext:
    """What a bridge writer sees at one gap."""

    question: str
    before: str
    """The edited text so far (ends with the kept step before the gap)."""
    previous_step: str
    """The kept text right before the gap."""
    dropped: str
    """The original text that was dropped."""
    dropped_contributions: list[str]
    after: str
    """The kept text right after the gap."""


class BridgeWriter(Protocol):
    """Writes one bridge sentence for a gap; may raise (the edit then uses the template)."""

    name: str

    def write(self, context: BridgeContext) -> str: ...


def template_bridge(contributions: list[str]) -> str:
    """The templated bridge for a gap that held steps with these labels."""
    if "failed_attempt" in contributions:
        return BRIDGE_TEMPLATES["failed_attempt"]
    if contributions and set(contributions) <= {"irrelevant"}:
        return BRIDGE_TEMPLATES["irrelevant"]
    return BRIDGE_TEMPLATES["other"]


def _numbers(text: str) -> set[float]:
    return set(numbers(text))


def validate_bridge(text: str, *, allowed_text: str, max_chars: int) -> tuple[str | None, str]:
    """``(bridge, "")`` for a usable one-sentence bridge, else ``(None, why)``.

    Usable: one line, one sentence, at most `max_chars` characters, no final-answer
    statement, and every number it mentions occurs in `allowed_text` (the kept text and
    the problem). A missing full stop is added.
    """
    bridge = text.strip().strip('"“”').strip()
    if not bridge:
        return None, "empty"
    if _LINE_BREAK.search(bridge):
        return None, "more than one line"
    if len(bridge) > max_chars:
        return None, f"too long ({len(bridge)} > {max_chars} characters)"
    if _SENTENCE_INSIDE.search(bridge):
        return None, "more than one sentence"
    if extract_answer(bridge).answer is not None:
        return None, "states an answer"
    new = sorted(_numbers(bridge) - _numbers(allowed_text))
    if new:
        shown = ", ".join(str(int(v)) if v.is_integer() else str(v) for v in new)
        return None, f"new number {shown}"
    if not _TERMINATOR.search(bridge):
        bridge += "."
    return bridge, ""


# ---------------------------------------------------------------------------------------------
# Editing one trace

Labels = Review | Consensus


def labels_name(labels: Labels) -> str:
    if isinstance(labels, Consensus):
        return f"consensus {labels.rule} ({', '.join(labels.reviewers)})"
    return f"review {labels.reviewer}"


def _usable(labels: Labels) -> str:
    """Why the labels cannot be used ("" when they can)."""
    if isinstance(labels, Review) and labels.status != "ok":
        return f"review failed: {labels.error or 'no reason given'}"
    if isinstance(labels, Consensus) and not labels.reviewers:
        return f"every review failed ({labels.failed_reviews})"
    return ""


def _unit_steps(units: list[Unit], steps: list[Step]) -> list[int | None]:
    """Per unit, the position in `steps` of the step covering it (the later step wins)."""
    owner: list[int | None] = [None] * len(units)
    for position, step in enumerate(steps):
        for i in range(max(step.first_unit, 0), min(step.last_unit, len(units) - 1) + 1):
            owner[i] = position
    return owner


def _answer_units(units: list[Unit], completion: str) -> set[int]:
    span = extract_answer(completion).span
    if span is None:
        return set()
    return {u.index for u in units if u.start < span[1] and span[0] < u.end}


def plan_drop(steps: list[Step], units: list[Unit], owner: list[int | None], protected: set[int], drop: tuple[str, ...]) -> tuple[set[int], set[int]]:
    """``(dropped step positions, refused step positions)``: the steps labelled with a `drop`
    contribution that cover no protected unit, less those a kept step depends on
    (transitively); the latter are refused."""
    position_of = {step.index: position for position, step in enumerate(steps)}
    covers_protected = {owner[i] for i in protected if owner[i] is not None}
    dropped = {p for p, s in enumerate(steps) if s.contribution in drop and p not in covers_protected}
    refused: set[int] = set()
    changed = True
    while changed:
        changed = False
        for p, step in enumerate(steps):
            if p in dropped:
                continue
            for d in step.depends_on:
                needed = position_of.get(d)
                if needed is not None and needed in dropped:
                    dropped.discard(needed)
                    refused.add(needed)
                    changed = True
    return dropped, refused


def _closes_sentence(units: list[Unit], i: int) -> bool:
    """Whether unit i ends a sentence: a terminator, a line break after it, or the text end."""
    if i == len(units) - 1:
        return True
    if _TERMINATOR.search(units[i].text.rstrip()):
        return True
    following = units[i + 1].text
    return bool(_LINE_BREAK.search(following[: len(following) - len(following.lstrip())]))


def _end_sentence(text: str) -> str:
    """`text` with its last clause turned into the end of a sentence."""
    body = text.rstrip()
    tail = text[len(body) :]
    if _TERMINATOR.search(body):
        return text
    if _CLAUSE_END.search(body):
        return body[:-1] + "." + tail
    return body + "." + tail


def _capitalize(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
        if not ch.isspace() and ch not in "\"'“‘(":
            return text
    return text


def _runs(n: int, dropped: set[int]) -> list[tuple[bool, int, int]]:
    """Maximal runs of units ``(is_dropped, first, last)``."""
    runs: list[tuple[bool, int, int]] = []
    for i in range(n):
        flag = i in dropped
        if runs and runs[-1][0] == flag:
            runs[-1] = (flag, runs[-1][1], i)
        else:
            runs.append((flag, i, i))
    return runs


@dataclass
class _Joined:
    text: str
    spans: list[EditSpan]
    bridges: int
    fallbacks: list[str]


def join_kept(
    units: list[Unit],
    dropped: set[int],
    *,
    contributions: list[str | None],
    bridge: Callable[[BridgeContext], tuple[str, str]] | None,
    question: str = "",
    answer_units: set[int] = frozenset(),
) -> _Joined:
    """The completion without the `dropped` units, repaired and, with `bridge`, bridged.

    `bridge(context)` returns ``(sentence, fallback reason)``; it is asked at each gap between
    two kept sentences that does not lead into the final-answer statement.
    """
    text = "".join(u.text for u in units)
    runs = _runs(len(units), dropped)
    out = ""
    spans: list[EditSpan] = []
    bridges = 0
    fallbacks: list[str] = []
    last_kept: int | None = None  # index of the last kept unit so far
    last_kept_text = ""
    for position, (is_dropped, first, last) in enumerate(runs):
        source = (units[first].start, units[last].end)
        if is_dropped:
            if last_kept is not None and _closes_sentence(units, last) and not _closes_sentence(units, last_kept):
                out = _end_sentence(out)
                spans[-1].text = out[spans[-1].start :]
                spans[-1].end = len(out)
            spans.append(
                EditSpan(
                    kind="dropped", text=text[source[0] : source[1]], start=len(out), end=len(out),
                    source_start=source[0], source_end=source[1], units=list(range(first, last + 1)),
                    contributions=[contributions[i] or "unlabelled" for i in range(first, last + 1)],
                )
            )  # fmt: skip
            continue
        piece = text[source[0] : source[1]]
        if position > 0:  # a dropped run lies before this kept run
            _, gap_first, gap_last = runs[position - 1]
            lead = piece[: len(piece) - len(piece.lstrip())]
            body = piece[len(lead) :]
            gap_lead = units[gap_first].text[: len(units[gap_first].text) - len(units[gap_first].text.lstrip())]
            sentence_start = last_kept is None or _closes_sentence(units, last_kept) or _closes_sentence(units, gap_last)
            if sentence_start and not _closes_sentence(units, gap_last):
                body = _capitalize(body)  # it continued a sentence that began in the gap
            if last_kept is None:
                lead = ""
            else:
                if gap_lead.count("\n") > lead.count("\n"):
                    lead = gap_lead
                if bridge is not None and sentence_start and first not in answer_units:
                    gap_text = text[units[gap_first].start : units[gap_last].end]
                    context = BridgeContext(
                        question=question, before=out, previous_step=last_kept_text,
                        dropped=gap_text.strip(), dropped_contributions=sorted({c or "unlabelled" for c in contributions[gap_first : gap_last + 1]}),
                        after=body,
                    )  # fmt: skip
                    sentence, fallback = bridge(context)
                    if fallback:
                        fallbacks.append(fallback)
                    start = len(out)
                    # A bridge starts a new sentence or line: after a line that ends without a
                    # full stop ("... = $480"), on a line of its own.
                    if _LINE_BREAK.search(out[-1:]):
                        separator = ""
                    elif _TERMINATOR.search(out.rstrip()):
                        separator = " "
                    else:
                        separator = "\n"
                    out += separator + sentence
                    spans.append(EditSpan(kind="inserted", text=out[start:], start=start, end=len(out)))
                    bridges += 1
            piece = lead + body
        spans.append(
            EditSpan(
                kind="kept", text=piece, start=len(out), end=len(out) + len(piece),
                source_start=source[0], source_end=source[1], units=list(range(first, last + 1)),
            )
        )  # fmt: skip
        out += piece
        last_kept, last_kept_text = last, piece.strip()
    return _Joined(text=out, spans=spans, bridges=bridges, fallbacks=fallbacks)


def edit_trace(
    trace: Trace,
    problem: Problem | None,
    labels: Labels | None,
    config: EditConfig = EditConfig(),
    *,
    count_tokens: Callable[[str], int] = word_token_count,
    bridge_writer: BridgeWriter | None = None,
) -> Edit:
    """Edit one trace (see the module docstring); never raises on model text."""
    base = dict(
        trace_id=trace.id, problem_id=trace.problem_id, arm=config.arm,
        mode="none" if config.arm == "rft" else config.mode,
        labels_from=labels_name(labels) if labels is not None else "",
    )  # fmt: skip

    def skipped(reason: str) -> Edit:
        return Edit(**base, status="skipped", reason=reason, original=trace.completion)

    if trace.outcome != "correct":
        return skipped(f"not solved (outcome {trace.outcome})")
    if problem is None:
        return skipped(f"problem {trace.problem_id} not found")
    if labels is None:
        return skipped("no review or consensus for this trace")
    why = _usable(labels)
    if why:
        return skipped(why)
    units = labels.units
    if "".join(u.text for u in units) != trace.completion:
        return skipped("the labels' units spell another text than the completion")
    if config.mode == "bridge-llm" and bridge_writer is None and config.arm != "rft":
        raise ValueError("mode bridge-llm needs a bridge writer")

    original_answer = extract_answer(trace.completion).answer
    steps = labels.steps
    owner = _unit_steps(units, steps)
    contributions = [steps[o].contribution if o is not None else None for o in owner]
    useful = useful_steps(steps)
    protected = _answer_units(units, trace.completion)
    dropped_steps, refused_steps = plan_drop(steps, units, owner, protected, config.drop)
    dropped = {i for i, o in enumerate(owner) if o is not None and o in dropped_steps}
    refused_units = sorted(i for i, o in enumerate(owner) if o is not None and o in refused_steps)
    if config.arm == "rft":
        dropped = set()
    elif config.arm == "random-drop":
        candidates = [u.index for u in units if u.index not in protected]
        rng = random.Random(f"{config.seed}:{trace.id}")
        dropped = set(rng.sample(candidates, min(len(dropped), len(candidates))))

    allowed = problem.question + " " + "".join(u.text for u in units if u.index not in dropped)

    def bridge(context: BridgeContext) -> tuple[str, str]:
        fallback = template_bridge(context.dropped_contributions)
        if config.mode == "bridge-template" or bridge_writer is None:
            return fallback, ""
        try:
            answer = bridge_writer.write(context)
        except Exception as e:  # noqa: BLE001 - a failed bridge call is data: use the template
            return fallback, f"call failed: {type(e).__name__}: {e}"[:200]
        sentence, why = validate_bridge(answer, allowed_text=allowed, max_chars=config.max_bridge_chars)
        return (sentence, "") if sentence else (fallback, why)

    joined = join_kept(
        units, dropped, contributions=contributions,
        bridge=None if config.mode == "drop" or config.arm == "rft" else bridge,
        question=problem.question, answer_units=protected,
    )  # fmt: skip
    for span in joined.spans:
        if span.kind == "inserted":
            span.source = "template" if config.mode == "bridge-template" else getattr(bridge_writer, "name", "llm")
    result = Edit(
        **base,
        status="edited" if dropped else "unchanged",
        reason="" if dropped else "nothing to drop",
        prompt=chat_messages(problem),
        original=trace.completion,
        completion=joined.text,
        answer=original_answer,
        spans=joined.spans,
        units=len(units),
        dropped_units=sorted(dropped),
        refused_steps=sorted(steps[p].index for p in refused_steps) if config.arm == "edit" else [],
        refused_units=refused_units if config.arm == "edit" else [],
        bridges=joined.bridges,
        bridge_fallbacks=joined.fallbacks,
        useful_steps=useful,
        tokens_before=count_tokens(trace.completion),
        tokens_after=count_tokens(joined.text),
    )
    if dropped and extract_answer(joined.text).answer != original_answer:
        # Never train on an edit whose final answer differs: keep the trace as it was.
        result.status, result.reason = "unchanged", "refused: the edit changed the final answer"
        result.completion, result.tokens_after, result.bridges = trace.completion, result.tokens_before, 0
        result.spans = [
            EditSpan(kind="kept", text=trace.completion, start=0, end=len(trace.completion), source_start=0,
                     source_end=len(trace.completion), units=[u.index for u in units])
        ]  # fmt: skip
        result.dropped_units, result.bridge_fallbacks = [], []
    return result


def edit_traces(
    traces: list[Trace],
    problems: dict[str, Problem],
    labels: dict[str, Labels],
    config: EditConfig = EditConfig(),
    *,
    count_tokens: Callable[[str], int] = word_token_count,
    bridge_writer: BridgeWriter | None = None,
) -> list[Edit]:
    """One `Edit` per trace, in order (`labels` by trace id)."""
    return [
        edit_trace(t, problems.get(t.problem_id), labels.get(t.id), config, count_tokens=count_tokens, bridge_writer=bridge_writer)
        for t in traces
    ]


# ---------------------------------------------------------------------------------------------
# Figures


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def edit_figures(edits: list[Edit]) -> dict[str, Any]:
    """The figures written with every edit set (see the module docstring).

    Token and unit figures are over the trained-on edits (status edited or unchanged);
    tokens per insight is the mean over those with at least one useful step.
    """
    used = [e for e in edits if e.status != "skipped"]
    skipped: dict[str, int] = {}
    for e in edits:
        if e.status == "skipped":
            key = e.reason.split(" (")[0].split(":")[0]
            skipped[key] = skipped.get(key, 0) + 1
    units = sum(e.units for e in used)
    figures = {
        "arm": edits[0].arm if edits else None,
        "mode": edits[0].mode if edits else None,
        "traces": len(edits),
        "trained_on": len(used),
        "edited": sum(e.status == "edited" for e in edits),
        "unchanged": sum(e.status == "unchanged" for e in edits),
        "skipped": sum(e.status == "skipped" for e in edits),
        "skipped_by_reason": skipped,
        "answer_changes_refused": sum(e.reason.startswith("refused") for e in edits),
        "tokens_per_trace_before": _mean([e.tokens_before for e in used]),
        "tokens_per_trace_after": _mean([e.tokens_after for e in used]),
        "units": units,
        "units_dropped": sum(len(e.dropped_units) for e in used),
        "fraction_units_dropped": sum(len(e.dropped_units) for e in used) / units if units else None,
        "bridges": sum(e.bridges for e in used),
        "bridge_fallbacks": sum(len(e.bridge_fallbacks) for e in used),
        "refused_drops": sum(len(e.refused_steps) for e in used),
        "refused_units": sum(len(e.refused_units) for e in used),
        "traces_with_refused_drops": sum(bool(e.refused_steps) for e in used),
        "tokens_per_insight_before": tokens_per_insight((e.tokens_before, e.useful_steps) for e in used),
        "tokens_per_insight_after": tokens_per_insight((e.tokens_after, e.useful_steps) for e in used),
    }
    return figures


# ---------------------------------------------------------------------------------------------
# LLM bridges through a reviewer backend

BRIDGE_PROTOCOL = "bridge-v1"

_BRIDGE_SYSTEM = (
    "You edit a solved math chain of thought. Some steps were cut because they did not help. "
    "Write ONE short sentence that joins the text before the cut to the text after it: say what "
    "the step before found and that the cut part is not needed. Use no number that is not already "
    "in the text. Answer with the sentence only."
)


def bridge_messages(context: BridgeContext) -> list[dict[str, str]]:
    """The chat request for one bridge."""
    user = (
        f"Problem: {context.question}\n\n"
        f"Text before the cut:\n{context.before.strip()}\n\n"
        f"Cut ({', '.join(context.dropped_contributions)}):\n{context.dropped}\n\n"
        f"Text after the cut:\n{context.after.strip()}\n\n"
        "The joining sentence:"
    )
    return [{"role": "system", "content": _BRIDGE_SYSTEM}, {"role": "user", "content": user}]


class LLMBridgeWriter:
    """Bridges from a configured LLM reviewer (`dca.review.ReviewerSpec`, backend openai,
    anthropic or hf), through the one LLM client (`dca.llm.LLMClient`: the review cache keyed
    by the bridge request, the spec's timeout, rate limit, and retries with jitter and
    Retry-After). Counts calls, tokens and cost."""

    def __init__(self, spec, *, cache=None):
        if not spec.is_llm:
            raise ValueError(f"reviewer {spec.name!r} has backend {spec.backend!r}; bridges need an LLM backend (openai, anthropic, hf)")
        self.name = spec.name
        self.spec = spec
        self.client = LLMClient.from_spec(spec, cache=cache)

    @property
    def stats(self) -> dict[str, Any]:
        s = self.client.stats
        return {
            "calls": s.answered, "cached_calls": s.cached, "failed_calls": s.failed, "requests": s.requests,
            "retries": s.retries, "input_tokens": s.input_tokens, "output_tokens": s.output_tokens, "cost_usd": round(s.cost, 6),
        }  # fmt: skip

    def write(self, context: BridgeContext) -> str:
        try:
            return self.client.generate_sync(bridge_messages(context), namespace=BRIDGE_PROTOCOL).text
        except LLMCallFailed as e:
            raise RuntimeError(f"{e.kind}: {e}") from e

    def close(self) -> None:
        self.client.close()
