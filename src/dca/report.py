"""The HTML trace viewer behind `dca show`: one self-contained page (no CDN, no network).

For each trace the page shows the problem, the outcome, and the completion coloured unit by
unit with the consensus label; disputed units are striped and outlined. Hovering a unit
lists every reviewer's label and reason; below the text, one strip per reviewer shows its
labels side by side, unit by unit. When credits are given, the per-token advantages are a
heat strip (blue positive, red negative, white zero; one cell per completion token, in
order: credits carry no character offsets, so the strip is not aligned with the text), and
each unit of the text is underlined in the colour of the credit its tokens carry
(`Credit.unit_advantages`), with a "credit" strip aligned with the reviewers' strips: under
the ``signed`` policy a failed trace's red lies on its error step. The
consensus steps and their dependencies are drawn as an arc diagram, and a table lists each
reviewer's steps. Buttons filter the traces: all, solved, failed, with disputed units.

Everything a model or reviewer wrote (completions, questions, reasons, even reviewer
names and ids) is untrusted: it is inserted only through `html.escape`, as text or as a
quoted attribute value, never into the script; so are numbers, indices and the labels
used in class names (a hand-made record could put markup in any field). The script only toggles the ``hidden``
attribute of trace sections, and the page's Content-Security-Policy allows that one script
(by its hash) and nothing else: no other script, no network request, no form submission
(``form-action 'none'``) and no ``<base>`` (``base-uri 'none'``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from .consensus import build_consensus, group_reviews
from .files import check_input_file, read_records
from .records import Consensus, Credit, Problem, Review, Trace

__all__ = ["ReportInputs", "collect_inputs", "render_report"]

#: Background colour of each contribution label.
LABEL_COLOURS = {
    "solved": "#81c784",
    "essential": "#aed581",
    "indirect": "#b3e5fc",
    "irrelevant": "#e0e0e0",
    "failed_attempt": "#ffcc80",
    "error": "#ef9a9a",
}
_RUN_FILES = {
    "problems.jsonl": "problems",
    "traces.jsonl": "traces",
    "reviews.jsonl": "reviews",
    "credits.jsonl": "credits",
    "consensus.jsonl": "consensuses",
}
_RECORD_TYPES = {"problems": Problem, "traces": Trace, "reviews": Review, "credits": Credit, "consensuses": Consensus}


@dataclass(kw_only=True)
class ReportInputs:
    """The records a report is built from; any of them may be empty."""

    traces: list[Trace] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    consensuses: list[Consensus] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _kind_of(path: Path) -> str:
    """Which record type a JSON-lines file holds, from the keys of its first record."""
    check_input_file(path, what="input")
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        data = json.loads(line)
                    except ValueError as e:
                        raise ValueError(f"{path}:{lineno}: not JSON ({e})") from e
                    if not isinstance(data, dict):
                        raise ValueError(f"{path}:{lineno}: not a JSON object")
                    keys = set(data)
                    break
            else:
                raise ValueError(f"{path} is empty")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}); give a JSON-lines file") from e
    if "token_advantages" in keys:
        return "credits"
    if "unit_votes" in keys:
        return "consensuses"
    if "reviewer" in keys:
        return "reviews"
    if "completion" in keys:
        return "traces"
    if "question" in keys:
        return "problems"
    raise ValueError(f"{path} holds neither traces, reviews, consensus, credits nor problems")


def input_files(paths: list[str | Path]) -> list[Path]:
    """The record files `collect_inputs` reads for `paths` (a run directory's known files)."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += [path / name for name in _RUN_FILES if (path / name).is_file()]
        else:
            files.append(path)
    return files


def collect_inputs(paths: list[str | Path]) -> ReportInputs:
    """Read a run directory (its known files) or JSON-lines files of any record type, every
    record validated (`dca.files.read_records`).

    Raises FileNotFoundError for a missing path, ValueError for an unreadable file and
    UserError for an invalid record.
    """
    inputs = ReportInputs()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        if path.is_dir():
            found = [(path / name, kind) for name, kind in _RUN_FILES.items() if (path / name).is_file()]
            if not any(kind in ("traces", "reviews") for _, kind in found):
                raise ValueError(f"{path} holds no traces.jsonl or reviews.jsonl; give a run directory or the files")
        else:
            found = [(path, _kind_of(path))]
        for file, kind in found:
            getattr(inputs, kind).extend(read_records(file, _RECORD_TYPES[kind], what=kind, allow_empty=True))
    return inputs


# ---------------------------------------------------------------------------------------------
# Rendering


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _outcome_class(trace: Trace | None) -> str:
    if trace is None:
        return "unknown"
    return "solved" if trace.outcome == "correct" else "failed"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def render_report(inputs: ReportInputs, *, rule: str = "majority", limit: int | None = None, title: str = "DCA traces") -> str:
    """The whole page as a string. Traces come from `inputs.traces`, else from the reviews;
    a consensus is built with `rule` for every trace that has reviews but no consensus record."""
    reviews_by_trace = group_reviews(inputs.reviews)
    consensus_by_trace = {c.trace_id: c for c in inputs.consensuses}
    for trace_id, group in reviews_by_trace.items():
        if trace_id not in consensus_by_trace:
            consensus_by_trace[trace_id] = build_consensus(group, rule=rule)
    credit_by_trace = {c.trace_id: c for c in inputs.credits}
    problem_by_id = {p.id: p for p in inputs.problems}
    trace_by_id = {t.id: t for t in inputs.traces}
    order = [t.id for t in inputs.traces] + [i for i in reviews_by_trace if i not in trace_by_id]
    total = len(order)
    if limit is not None:
        order = order[:limit]
    reviewers = sorted({r.reviewer for r in inputs.reviews})

    sections = []
    for trace_id in order:
        trace = trace_by_id.get(trace_id)
        sections.append(
            _trace_section(
                trace_id,
                trace,
                problem_by_id.get(trace.problem_id) if trace else None,
                sorted(reviews_by_trace.get(trace_id, []), key=lambda r: r.reviewer),
                consensus_by_trace.get(trace_id),
                credit_by_trace.get(trace_id),
            )
        )
    counts = {"solved": 0, "failed": 0, "unknown": 0}
    for trace_id in order:
        counts[_outcome_class(trace_by_id.get(trace_id))] += 1
    disputed = sum(1 for t in order if consensus_by_trace.get(t) and consensus_by_trace[t].disputed_units)
    legend = "".join(
        f'<span class="chip" style="background:{_e(colour)}">{_e(label)}</span>' for label, colour in LABEL_COLOURS.items()
    ) + '<span class="chip disputed">disputed</span><span class="chip">uncovered</span>'
    shown = f"{len(order)} of {total}" if len(order) < total else str(total)
    summary = (
        f"{_e(shown)} traces · {_e(counts['solved'])} solved · {_e(counts['failed'])} failed · "
        f"{_e(disputed)} with disputed units · reviewers: {_e(', '.join(reviewers) or 'none')} · consensus rule: {_e(rule)}"
    )
    return _PAGE.format(
        title=_e(title),
        style=_STYLE,
        summary=summary,
        legend=legend,
        sections="\n".join(sections) or '<p class="empty">No traces.</p>',
        script=_SCRIPT,
        script_hash=_SCRIPT_HASH,
    )


def _trace_section(
    trace_id: str,
    trace: Trace | None,
    problem: Problem | None,
    reviews: list[Review],
    consensus: Consensus | None,
    credit: Credit | None,
) -> str:
    outcome = _outcome_class(trace)
    has_disputed = bool(consensus and consensus.disputed_units)
    badges = [f'<span class="badge {_e(outcome)}">{_e(outcome)}</span>']
    if trace is not None:
        badges.append(f'<span class="meta">answer {_e(trace.answer)} · reward {_e(f"{trace.reward:g}")} · advantage {_e(_number(trace.advantage))}</span>')
    if consensus is not None:
        badges.append(
            f'<span class="meta">agreed {_e(f"{consensus.fraction_agreed:.0%}")} · {_e(len(consensus.disputed_units))} disputed units'
            f" · {_e(consensus.failed_reviews)} failed reviews</span>"
        )
    parts = [
        f'<section class="trace" data-outcome="{_e(outcome)}" data-disputed="{int(has_disputed)}">',
        f"<h2>{_e(trace_id)} {' '.join(badges)}</h2>",
    ]
    if problem is not None:
        parts.append(f'<p class="question"><b>Problem.</b> {_e(problem.question)} <span class="meta">(gold answer {_e(problem.answer)})</span></p>')
    if consensus is not None and consensus.units:
        unit_credit = _unit_credit(consensus, credit)
        parts.append(_coloured_text(consensus, reviews, unit_credit))
        parts.append(_reviewer_strips(consensus, reviews, unit_credit))
    else:
        text = trace.completion if trace else ""
        parts.append(f'<div class="cot">{_e(text)}</div><p class="meta">no reviews</p>')
    if credit is not None:
        parts.append(_heat_strip(credit))
    if consensus is not None:
        parts.append(_dependency_graph(consensus))
    failed = [r for r in reviews if r.status != "ok"]
    for r in failed:
        parts.append(f'<p class="failed-review">review by {_e(r.reviewer)} failed: {_e(r.error)}</p>')
    if reviews:
        parts.append(_steps_table(reviews))
    parts.extend(_dialogue(r) for r in reviews if r.dialogue)
    parts.append("</section>")
    return "\n".join(parts)


def _unit_title(consensus: Consensus, reviews: list[Review], i: int) -> str:
    lines = []
    label = consensus.unit_contributions()[i]
    state = "disputed" if i in consensus.disputed_units else (label or "uncovered")
    lines.append(f"unit {i}: {state} (agreement {consensus.unit_agreement[i]:.0%})")
    unit = consensus.units[i]
    for review in reviews:
        if review.status != "ok":
            continue
        step = _step_at(review, unit.start)
        lines.append(f"{review.reviewer}: " + (f"{step.contribution} / {step.function} — {step.reason}" if step else "(not covered)"))
    return "\n".join(lines)


def _step_at(review: Review, char: int):
    """The step of `review` whose units hold character `char`, if any."""
    unit = next((u for u in review.units if u.start <= char < u.end), None)
    if unit is None:
        return None
    found = None
    for step in review.steps:
        if step.first_unit <= unit.index <= step.last_unit:
            found = step  # the later step wins, as in Review.unit_contributions
    return found


def _unit_credit(consensus: Consensus, credit: Credit | None) -> list[float] | None:
    """The credit's per-unit advantage sums, when they belong to these units."""
    if credit is None or len(credit.unit_advantages) != len(consensus.units):
        return None
    return credit.unit_advantages


def _credit_colour(value: float, values: list[float]) -> str:
    """Blue for positive, red for negative, stronger for a larger share of the largest |sum|."""
    scale = max((abs(v) for v in values), default=0.0) or 1.0
    strength = 0.25 + 0.75 * min(abs(value) / scale, 1.0) if value else 0.0
    return f"rgba(30,100,220,{strength:.2f})" if value >= 0 else f"rgba(220,40,40,{strength:.2f})"


def _coloured_text(consensus: Consensus, reviews: list[Review], unit_credit: list[float] | None = None) -> str:
    """The completion coloured by consensus label; with credit, each unit is underlined in the
    colour of the advantage its tokens carry (blue positive, red negative, none for zero)."""
    labels = consensus.unit_contributions()
    spans = []
    for i, unit in enumerate(consensus.units):
        classes = ["unit"]
        if i in consensus.disputed_units:
            classes.append("disputed")
        elif labels[i]:
            classes.append(f"label-{_e(labels[i])}")
        title = _unit_title(consensus, reviews, i)
        style = ""
        if unit_credit is not None:
            value = unit_credit[i]
            title += f"\ncredit: {value:+.3f} (sum of its token advantages)"
            if value:
                classes.append("credit-negative" if value < 0 else "credit-positive")
                style = f' style="border-bottom:3px solid {_e(_credit_colour(value, unit_credit))}"'
        spans.append(f'<span class="{_e(" ".join(classes))}"{style} title="{_e(title)}">{_e(unit.text)}</span>')
    return f'<div class="cot">{"".join(spans)}</div>'


def _reviewer_strips(consensus: Consensus, reviews: list[Review], unit_credit: list[float] | None = None) -> str:
    rows = []
    widths = [max(len(u.text), 1) for u in consensus.units]
    if unit_credit is not None:
        cells = [
            f'<i style="flex-grow:{_e(w)};background:{_e(_credit_colour(v, unit_credit))}" title="{_e(f"credit {v:+.3f}")}"></i>'
            for w, v in zip(widths, unit_credit)
        ]
        rows.append(f'<div class="strip-row credit-row"><span class="who">credit</span><div class="strip">{"".join(cells)}</div></div>')
    for review in [*reviews, None]:
        cells = []
        for i, unit in enumerate(consensus.units):
            if review is None:
                label = consensus.unit_contributions()[i]
                tip = f"consensus: {'disputed' if i in consensus.disputed_units else label or 'uncovered'}"
                cls = "disputed" if i in consensus.disputed_units else f"label-{label}" if label else ""
            elif review.status != "ok":
                label, tip, cls = None, "review failed", "failed"
            else:
                step = _step_at(review, unit.start)
                label = step.contribution if step else None
                tip = f"{unit.text.strip()}\n{review.reviewer}: {label or 'not covered'}" + (f" — {step.reason}" if step and step.reason else "")
                cls = f"label-{label}" if label else ""
            cells.append(f'<i class="{_e(cls)}" style="flex-grow:{_e(widths[i])}" title="{_e(tip)}"></i>')
        name = "consensus" if review is None else review.reviewer
        rows.append(f'<div class="strip-row"><span class="who">{_e(name)}</span><div class="strip">{"".join(cells)}</div></div>')
    return f'<div class="strips">{"".join(rows)}</div>'


def _heat_strip(credit: Credit) -> str:
    values = credit.token_advantages
    scale = max((abs(v) for v in values), default=0.0) or 1.0
    cells = []
    for i, v in enumerate(values):
        strength = min(abs(v) / scale, 1.0)
        colour = f"rgba(30,100,220,{strength:.2f})" if v >= 0 else f"rgba(220,40,40,{strength:.2f})"
        cells.append(f'<i style="background:{_e(colour)}" title="{_e(f"token {i}: {v:+.4f}")}"></i>')
    note = f"{credit.policy} policy: {credit.credited_tokens} of {len(values)} tokens credited"
    if credit.fallback:
        note += f"; fell back to uniform: {credit.fallback}"
    return (
        f'<div class="heat-row"><span class="who" title="{_e(note)}">token advantages</span>'
        f'<div class="heat" title="{_e(note)}">{"".join(cells)}</div></div>'
    )


def _dependency_graph(consensus: Consensus) -> str:
    steps = consensus.steps
    if not steps:
        return '<p class="meta">no agreed steps, so no dependency graph</p>'
    dx, r = 56, 14
    width = 40 + dx * (len(steps) - 1) + 2 * r
    depth = max((s.index - d for s in steps for d in s.depends_on if d < s.index), default=1)
    height = 30 + min(depth, 8) * 12 + 2 * r
    base = height - r - 6
    x = {s.index: 20 + r + dx * n for n, s in enumerate(steps)}
    arcs, nodes = [], []
    for s in steps:
        for d in s.depends_on:
            if d in x:
                x1, x2 = x[d], x[s.index]
                lift = min(abs(x2 - x1) / dx, 8) * 12 + 10
                arcs.append(
                    f'<path d="{_e(f"M{x1},{base - r} C{x1},{base - r - lift} {x2},{base - r - lift} {x2},{base - r}")}" '
                    'class="arc" marker-end="url(#arrow)"/>'
                )
    texts = {i: "".join(u.text for u in consensus.units[s.first_unit : s.last_unit + 1]).strip() for i, s in enumerate(steps)}
    for n, s in enumerate(steps):
        tip = f"step {s.index}: {s.contribution} / {s.function}, units {s.first_unit}-{s.last_unit}\n{texts[n]}\n{s.reason}"
        nodes.append(
            f'<g><title>{_e(tip)}</title><circle cx="{_e(x[s.index])}" cy="{_e(base)}" r="{r}" fill="{_e(LABEL_COLOURS.get(s.contribution, "#fff"))}"/>'
            f'<text x="{_e(x[s.index])}" y="{_e(base + 4)}">{_e(s.index)}</text></g>'
        )
    return (
        '<div class="graph"><span class="who">agreed steps and dependencies</span>'
        f'<svg width="{_e(width)}" height="{_e(height)}" viewBox="0 0 {_e(width)} {_e(height)}" role="img">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'
        f'{"".join(arcs)}{"".join(nodes)}</svg></div>'
    )


def _steps_table(reviews: list[Review]) -> str:
    rows = ["<tr><th>reviewer</th><th>step</th><th>units</th><th>function</th><th>contribution</th><th>depends on</th><th>reason</th></tr>"]
    for review in reviews:
        for s in review.steps:
            colour = LABEL_COLOURS.get(s.contribution, "#fff")
            rows.append(
                f"<tr><td>{_e(review.reviewer)}</td><td>{_e(s.index)}</td><td>{_e(s.first_unit)}–{_e(s.last_unit)}</td><td>{_e(s.function)}</td>"
                f'<td style="background:{_e(colour)}">{_e(s.contribution)}</td><td>{_e(", ".join(map(str, s.depends_on)))}</td><td>{_e(s.reason)}</td></tr>'
            )
    return f'<details><summary>each reviewer\'s steps</summary><table class="steps">{"".join(rows)}</table></details>'


def _dialogue(review: Review) -> str:
    """A dialogue review's questions and the assistant's replies (all model text escaped)."""
    rows = []
    for turn in review.dialogue:
        who = "reviewer asks" if turn.role == "reviewer" else "assistant replies"
        unit = "?" if turn.unit is None else str(turn.unit)
        rows.append(f'<tr class="turn-{_e(turn.role)}"><td>{_e(who)}</td><td>{_e(unit)}</td><td>{_e(turn.text)}</td></tr>')
    questions = sum(1 for t in review.dialogue if t.role == "reviewer")
    return (
        f'<details class="dialogue"><summary>dialogue of {_e(review.reviewer)} ({questions} question(s))</summary>'
        f'<table class="steps"><tr><th>turn</th><th>unit</th><th>text</th></tr>{"".join(rows)}</table></details>'
    )


_STYLE = (
    """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 8px 16px; z-index: 1; }
h1 { font-size: 18px; margin: 0 0 4px; }
main { padding: 8px 16px; }
.filters button { margin-right: 4px; padding: 2px 10px; border: 1px solid #999; background: #fff; border-radius: 12px; cursor: pointer; }
.filters button.active { background: #333; color: #fff; }
.chip { display: inline-block; padding: 0 6px; margin: 2px; border-radius: 3px; border: 1px solid #ccc; font-size: 12px; }
section.trace { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
section.trace h2 { font-size: 15px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
.badge { font-family: system-ui, sans-serif; font-size: 12px; padding: 1px 8px; border-radius: 10px; color: #fff; }
.badge.solved { background: #2e7d32; } .badge.failed { background: #c62828; } .badge.unknown { background: #777; }
.meta { color: #666; font-size: 12px; font-weight: normal; font-family: system-ui, sans-serif; }
.question { margin: 4px 0 8px; }
.cot { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; line-height: 1.9; padding: 6px; border: 1px solid #eee; }
.unit { border-radius: 2px; }
.disputed { background: repeating-linear-gradient(45deg, #fff59d, #fff59d 4px, #ffe082 4px, #ffe082 8px); outline: 1px dashed #c62828; }
.strips, .heat-row, .graph { margin-top: 6px; }
.strip-row, .heat-row { display: flex; align-items: center; gap: 8px; }
.who { width: 210px; flex: none; font-size: 12px; color: #444; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.strip, .heat { display: flex; flex: 1; height: 12px; border: 1px solid #ddd; }
.strip i { display: block; height: 100%; border-right: 1px solid #fff; }
.heat i { display: block; flex: 1 1 0; height: 100%; }
.strip i.failed { background: #555; }
.graph svg { display: block; max-width: 100%; }
.graph text { font: 11px system-ui, sans-serif; text-anchor: middle; }
.graph circle { stroke: #555; }
.arc { fill: none; stroke: #777; stroke-width: 1.2; }
.failed-review { color: #c62828; font-size: 12px; }
table.steps { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
table.steps td, table.steps th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
.empty { color: #666; }
"""
    + "".join(f".label-{label} {{ background: {colour}; }}\n" for label, colour in LABEL_COLOURS.items())
)

_SCRIPT = """
(function () {
  var buttons = document.querySelectorAll('.filters button');
  function show(filter) {
    document.querySelectorAll('section.trace').forEach(function (s) {
      var keep = filter === 'all' || s.dataset.outcome === filter || (filter === 'disputed' && s.dataset.disputed === '1');
      s.hidden = !keep;
    });
    buttons.forEach(function (b) { b.classList.toggle('active', b.dataset.filter === filter); });
  }
  buttons.forEach(function (b) { b.addEventListener('click', function () { show(b.dataset.filter); }); });
  show('all');
})();
"""

#: The page's only script is allowed by its hash (Content-Security-Policy), so a script that
#: escaped escaping would still not run.
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src '{script_hash}'; form-action 'none'; base-uri 'none'">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div class="meta">{summary}</div>
<div class="filters">show:
<button data-filter="all">all</button><button data-filter="solved">solved</button><button data-filter="failed">failed</button><button data-filter="disputed">with disputed units</button>
</div>
<div>{legend}</div>
</header>
<main>
{sections}
</main>
<script>{script}</script>
</body>
</html>
"""
