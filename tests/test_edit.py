"""Edited chains of thought (dca.edit): joining tables, dependencies, the final answer, the
baselines, bridge validation, LLM bridges through a real local HTTP endpoint, figures, records.

Traces are gold CoTs of synthetic problems padded with irrelevant steps (tests/gold_traces.py)
labelled by the oracle reviewer; no model is needed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dca.consensus import build_consensus
from dca.edit import (
    BRIDGE_TEMPLATES,
    Edit,
    EditConfig,
    LLMBridgeWriter,
    edit_figures,
    edit_trace,
    join_kept,
    validate_bridge,
)
from dca.problems.answer import check_answer, extract_answer
from dca.records import Review, Step
from dca.files import read_jsonl, write_jsonl
from dca.review import OracleReviewer, ReviewCache, ReviewerSpec
from dca.segment import segment
from gold_traces import gold_traces, review_all, three_reviewers

BRIDGE = "BRIDGE."


def check_spans(edit: Edit) -> None:
    """The spans account for the edit: kept and inserted text stands where they say, dropped
    text comes from where they say, and kept + inserted spans tile the edited completion."""
    position = 0
    for span in edit.spans:
        if span.kind == "dropped":
            assert edit.original[span.source_start : span.source_end] == span.text
            assert span.start == span.end == position
            continue
        assert span.start == position, (span, edit.completion)
        assert edit.completion[span.start : span.end] == span.text
        position = span.end
    assert position == len(edit.completion)


def joined(text: str, dropped: set[int], *, bridge: bool = False) -> str:
    units = segment(text)
    answer = extract_answer(text).span
    answer_units = {u.index for u in units if answer and u.start < answer[1] and answer[0] < u.end}
    result = join_kept(
        units, dropped, contributions=["irrelevant"] * len(units),
        bridge=(lambda context: (BRIDGE, "")) if bridge else None, answer_units=answer_units,
    )  # fmt: skip
    return result.text


@pytest.mark.parametrize(
    ("text", "dropped", "bridge", "expected"),
    [
        # a whole sentence in the middle, at the start, at the end
        ("A has 1. B has 2. C has 3.", {1}, False, "A has 1. C has 3."),
        ("A has 1. B has 2. C has 3.", {0}, False, "B has 2. C has 3."),
        ("A has 1. B has 2. C has 3.", {2}, False, "A has 1. B has 2."),
        ("A has 1. B has 2. C has 3.", {0, 1}, False, "C has 3."),
        # a line break in the gap survives; the answer line keeps its own
        ("A has 1.\nB has 2. C has 3.", {1}, False, "A has 1.\nC has 3."),
        ("A has 1. B has 2.\nAnswer: 1", {1}, False, "A has 1.\nAnswer: 1"),
        # clauses: a kept clause that now ends its sentence gets a full stop ...
        ("First, 3 + 4 = 7, and 7 * 2 = 14. Then 14 + 1 = 15.", {1}, False, "First, 3 + 4 = 7. Then 14 + 1 = 15."),
        # ... one that now opens a sentence is capitalised
        ("First, 3 + 4 = 7, and 7 * 2 = 14. Then 14 + 1 = 15.", {0}, False, "And 7 * 2 = 14. Then 14 + 1 = 15."),
        ("We know 5 + 1 = 6. So 3 + 4 = 7, and 7 * 2 = 14.", {1}, False, "We know 5 + 1 = 6. And 7 * 2 = 14."),
        # bridges: between two kept sentences only, never before the answer line
        ("A has 1. B has 2. C has 3.", {1}, True, "A has 1. BRIDGE. C has 3."),
        ("A has 1. B has 2. C has 3.", {0}, True, "B has 2. C has 3."),
        ("A has 1. B has 2.\nAnswer: 1", {1}, True, "A has 1.\nAnswer: 1"),
        ("A has 1. B has 2. C has 3. D has 4.", {1, 3}, True, "A has 1. BRIDGE. C has 3."),
        ("First, 3 + 4 = 7, and 7 * 2 = 14, so 14 + 1 = 15.", {1}, True, "First, 3 + 4 = 7, so 14 + 1 = 15."),
        # a bridge starts a new sentence or line: never glued after a line with no full stop
        ("He earns 40 * 12 = $480\nHe has 3 cats.\nSo 480 - 3 = 477 left.", {1}, True,
         "He earns 40 * 12 = $480\nBRIDGE.\nSo 480 - 3 = 477 left."),
        ("A has 1.\nB has 2.\nC has 3.", {1}, True, "A has 1. BRIDGE.\nC has 3."),
        # nothing dropped: the text as it was
        ("A has 1. B has 2.\nAnswer: 1", set(), True, "A has 1. B has 2.\nAnswer: 1"),
    ],
)
def test_join_kept(text, dropped, bridge, expected):
    assert joined(text, dropped, bridge=bridge) == expected


def oracle_review(gold) -> Review:
    units = segment(gold.trace.completion)
    return OracleReviewer().review(gold.problem, gold.trace.completion, units, trace_id=gold.trace.id)


@pytest.fixture(scope="module")
def solved():
    golds = [g for g in gold_traces(40, seed=5, wrong_share=0.0, irrelevant_rate=0.6)]
    return [(g, oracle_review(g)) for g in golds]


def kept_units(edit: Edit) -> set[int]:
    return set(range(edit.units)) - set(edit.dropped_units)


@pytest.mark.parametrize("mode", ["drop", "bridge-template"])
def test_edits_keep_the_final_answer_and_every_kept_dependency(solved, mode):
    edited = 0
    for gold, review in solved:
        edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode=mode))
        assert edit.status in ("edited", "unchanged"), edit.reason
        check_spans(edit)
        assert check_answer(edit.completion, gold.problem.answer).outcome == "correct"
        assert extract_answer(edit.completion).answer == extract_answer(gold.trace.completion).answer == edit.answer
        kept = kept_units(edit)
        steps = {s.index: s for s in review.steps}
        for step in review.steps:
            if step.first_unit in kept:  # a kept step: everything it depends on is kept
                for d in step.depends_on:
                    assert set(range(steps[d].first_unit, steps[d].last_unit + 1)) <= kept
            else:
                assert step.contribution in ("irrelevant", "failed_attempt")
        # what the oracle called irrelevant is gone unless a kept step needed it
        irrelevant = {i for s in review.steps if s.contribution == "irrelevant" for i in range(s.first_unit, s.last_unit + 1)}
        assert irrelevant - set(edit.refused_units) == set(edit.dropped_units)
        assert edit.tokens_after <= edit.tokens_before or mode == "bridge-template"
        edited += edit.status == "edited"
    assert edited >= len(solved) // 2, "the gold traces are padded: most should be edited"


def test_the_oracle_finds_nothing_irrelevant_in_a_dropped_edit(solved):
    for gold, review in solved:
        edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode="drop"))
        again = OracleReviewer().review(gold.problem, edit.completion, segment(edit.completion), trace_id="again")
        assert [s for s in again.steps if s.contribution == "irrelevant"] == [], edit.completion


def test_bridges_are_templates_at_each_gap_between_sentences(solved):
    gold, review = next((g, r) for g, r in solved if sum(s.contribution == "irrelevant" for s in r.steps) >= 2)
    edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode="bridge-template"))
    inserted = [s for s in edit.spans if s.kind == "inserted"]
    assert edit.bridges == len(inserted) >= 1
    assert all(s.text == " " + BRIDGE_TEMPLATES["irrelevant"] and s.source == "template" for s in inserted)


def hand_review(text: str, steps: list[tuple[int, int, str, list[int]]]) -> Review:
    units = segment(text)
    return Review(
        trace_id="t", reviewer="hand", units=units,
        steps=[Step(index=i, first_unit=a, last_unit=b, function="other", contribution=c, depends_on=d) for i, (a, b, c, d) in enumerate(steps)],
    )  # fmt: skip


def hand_trace(text: str, answer: str = "5"):
    from dca.records import Problem, Trace

    problem = Problem(id="p", source="test", question="A has 2. B has 3. How many in all?", answer=answer)
    return Trace(id="t", problem_id="p", prompt="", completion=text, answer=answer, outcome="correct", reward=1.0), problem


TEXT = "A has 2. Let me restate: A has 2. B has 3. So 2 + 3 = 5.\nAnswer: 5"


@pytest.mark.parametrize(
    ("steps", "dropped", "refused_steps"),
    [
        # nothing depends on the irrelevant restatement: dropped
        ([(0, 0, "indirect", []), (1, 1, "irrelevant", []), (2, 2, "indirect", []), (3, 3, "solved", [0, 2]), (4, 4, "solved", [3])], [1], []),
        # the solving step depends on it: refused, kept, counted
        ([(0, 0, "indirect", []), (1, 1, "irrelevant", []), (2, 2, "indirect", []), (3, 3, "solved", [1, 2]), (4, 4, "solved", [3])], [], [1]),
        # transitively: a refused step's own dependencies are refused too
        ([(0, 0, "irrelevant", []), (1, 1, "irrelevant", [0]), (2, 2, "indirect", []), (3, 3, "solved", [1, 2]), (4, 4, "solved", [3])], [], [0, 1]),
        # a dropped step that depends on a kept one does not keep anything
        ([(0, 0, "indirect", []), (1, 1, "irrelevant", [0]), (2, 2, "failed_attempt", []), (3, 3, "solved", [0]), (4, 4, "solved", [3])], [1, 2], []),
        # the final answer is never dropped, whatever its label
        ([(0, 0, "indirect", []), (1, 1, "irrelevant", []), (2, 2, "indirect", []), (3, 3, "solved", [0, 2]), (4, 4, "irrelevant", [3])], [1], []),
    ],
)
def test_dependencies_refuse_drops(steps, dropped, refused_steps):
    trace, problem = hand_trace(TEXT)
    edit = edit_trace(trace, problem, hand_review(TEXT, steps), EditConfig(mode="drop"))
    assert edit.dropped_units == dropped
    assert edit.refused_steps == refused_steps
    assert edit.refused_units == refused_steps  # one unit per step here
    assert edit.completion.endswith("\nAnswer: 5")
    check_spans(edit)


def test_an_edit_that_would_change_the_answer_is_refused():
    text = "So 2 + 3 = 5.\nAnswer: 5\nThe answer is 7."
    trace, problem = hand_trace(text)
    # The strict "Answer: 5" line is the final answer; "The answer is 7." is lenient and loses.
    # Labelling the strict line irrelevant cannot drop it (it is the answer statement), but a
    # drop that leaves only a different statement would change the answer: refused whole.
    review = hand_review(text, [(0, 0, "solved", []), (1, 1, "solved", [0]), (2, 2, "irrelevant", [])])
    edit = edit_trace(trace, problem, review, EditConfig(mode="drop"))
    assert edit.status == "edited" and edit.completion == "So 2 + 3 = 5.\nAnswer: 5"
    assert extract_answer(edit.completion).answer == "5"


def test_skipped_traces_are_recorded_with_their_reason(solved):
    gold, review = solved[0]
    wrong = next(g for g in gold_traces(20, seed=2, wrong_share=0.5) if g.wrong)
    cases = [
        (wrong.trace, wrong.problem, oracle_review(wrong), "not solved"),
        (gold.trace, None, review, "problem"),
        (gold.trace, gold.problem, None, "no review"),
        (gold.trace, gold.problem, Review(trace_id=gold.trace.id, reviewer="x", units=review.units, status="failed", error="timeout"), "review failed"),
        (gold.trace, gold.problem, hand_review("Other text.\nAnswer: 5", []), "another text"),
    ]
    for trace, problem, labels, reason in cases:
        edit = edit_trace(trace, problem, labels, EditConfig())
        assert edit.status == "skipped" and reason in edit.reason
        assert edit.completion == ""


def test_a_consensus_edit_keeps_disputed_units(solved):
    golds = gold_traces(12, seed=7, wrong_share=0.0, irrelevant_rate=0.6)
    reviews = review_all(golds, three_reviewers(golds, flip_rate=0.3, seed=1))
    disputed_seen = 0
    for gold in golds:
        consensus = build_consensus([r for r in reviews if r.trace_id == gold.trace.id], rule="unanimous")
        edit = edit_trace(gold.trace, gold.problem, consensus, EditConfig(mode="drop"))
        assert edit.labels_from.startswith("consensus unanimous")
        assert not set(consensus.disputed_units) & set(edit.dropped_units)
        labels = consensus.unit_contributions()
        assert all(labels[i] == "irrelevant" for i in edit.dropped_units)
        assert check_answer(edit.completion, gold.problem.answer).outcome == "correct"
        disputed_seen += len(consensus.disputed_units)
    assert disputed_seen > 0


def test_baselines_rft_and_random_drop(solved):
    for gold, review in solved:
        edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode="drop"))
        rft = edit_trace(gold.trace, gold.problem, review, EditConfig(arm="rft"))
        assert (rft.status, rft.mode, rft.completion, rft.dropped_units) == ("unchanged", "none", gold.trace.completion, [])
        random_drop = edit_trace(gold.trace, gold.problem, review, EditConfig(arm="random-drop", mode="drop", seed=3))
        again = edit_trace(gold.trace, gold.problem, review, EditConfig(arm="random-drop", mode="drop", seed=3))
        assert random_drop.dropped_units == again.dropped_units  # seeded per trace
        assert len(random_drop.dropped_units) == len(edit.dropped_units)
        assert extract_answer(random_drop.completion).answer == gold.problem.answer
        check_spans(random_drop)
    differs = sum(
        edit_trace(g.trace, g.problem, r, EditConfig(arm="random-drop", mode="drop")).dropped_units
        != edit_trace(g.trace, g.problem, r, EditConfig(mode="drop")).dropped_units
        for g, r in solved
    )
    assert differs > len(solved) // 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Since Ava has 65 pears, the buttons do not matter.", "Since Ava has 65 pears, the buttons do not matter."),
        ("  Knowing 13 * 5 = 65, we go on  ", "Knowing 13 * 5 = 65, we go on."),
        ('"With 65 pears known, go on."', "With 65 pears known, go on."),
        ("Since Ava has 66 pears, go on.", "new number 66"),
        ("So 65 + 1.5 is next.", "new number 1.5"),
        ("We know 65. Now go on.", "more than one sentence"),
        ("We know 65\nso go on.", "more than one line"),
        ("The answer is 65.", "states an answer"),
        ("", "empty"),
        ("x" * 81, "too long (81 > 80 characters)"),
    ],
)
def test_validate_bridge(answer, expected):
    bridge, why = validate_bridge(answer, allowed_text="Ava has 13 pears. 13 * 5 = 65.", max_chars=80)
    assert (bridge or why) == expected


class FunctionWriter:
    """A bridge writer backed by a function (a test double that is a real writer)."""

    name = "function"

    def __init__(self, function):
        self.function = function
        self.contexts = []

    def write(self, context):
        self.contexts.append(context)
        return self.function(context)


def _raise(context):
    raise TimeoutError("no answer")


@pytest.mark.parametrize(
    ("function", "fallback"),
    [
        (lambda c: "Only the pears matter, so go on.", None),
        (lambda c: "Add 1000 more.", "new number 1000"),
        (_raise, "call failed: TimeoutError: no answer"),
    ],
)
def test_llm_bridges_are_validated_and_fall_back_to_the_template(solved, function, fallback):
    gold, review = next((g, r) for g, r in solved if r.steps[1].contribution == "irrelevant")
    writer = FunctionWriter(function)
    edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode="bridge-llm"), bridge_writer=writer)
    inserted = [s for s in edit.spans if s.kind == "inserted"]
    assert inserted and len(writer.contexts) == len(inserted)
    context = writer.contexts[0]
    assert context.question == gold.problem.question and context.previous_step in edit.completion
    assert context.dropped_contributions == ["irrelevant"] and context.dropped not in edit.completion
    if fallback is None:
        assert edit.bridge_fallbacks == [] and all(s.text == " Only the pears matter, so go on." for s in inserted)
    else:
        assert edit.bridge_fallbacks == [fallback] * len(inserted)
        assert all(s.text == " " + BRIDGE_TEMPLATES["irrelevant"] for s in inserted)
    assert all(s.source == "function" for s in inserted)
    check_spans(edit)


class BridgeServer:
    """An OpenAI-compatible /chat/completions endpoint on localhost that answers `text`."""

    def __init__(self, text: str):
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append(body)
                answer = {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59},
                }  # fmt: skip
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_llm_bridge_writer_calls_a_reviewer_backend_and_caches(solved, tmp_path):
    gold, review = next((g, r) for g, r in solved if r.steps[1].contribution == "irrelevant")
    server = BridgeServer("Only the needed facts matter here.")
    spec = ReviewerSpec(name="bridger", backend="openai", model="m", base_url=server.url, max_attempts=1, timeout=10)
    try:
        for run in range(2):
            cache = ReviewCache(tmp_path / "cache.sqlite")
            writer = LLMBridgeWriter(spec, cache=cache)
            edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode="bridge-llm"), bridge_writer=writer)
            writer.close()
            cache.close()
            assert edit.bridges >= 1 and edit.bridge_fallbacks == []
            assert "Only the needed facts matter here." in edit.completion
            if run == 0:
                assert writer.stats["calls"] == edit.bridges and writer.stats["output_tokens"] == 9 * edit.bridges
                calls = len(server.requests)
            else:
                assert writer.stats["cached_calls"] == edit.bridges and writer.stats["calls"] == 0
        assert len(server.requests) == calls  # the second run was served from the cache
        user = server.requests[0]["messages"][1]["content"]
        assert gold.problem.question in user and "Text before the cut" in user
    finally:
        server.close()


def test_edit_figures_and_record_round_trip(tmp_path, solved):
    trace, problem = hand_trace(TEXT)
    steps = [(0, 0, "indirect", []), (1, 1, "irrelevant", []), (2, 2, "indirect", []), (3, 3, "solved", [0, 2]), (4, 4, "solved", [3])]
    review = hand_review(TEXT, steps)
    words = lambda text: len(text.split())  # noqa: E731
    edit = edit_trace(trace, problem, review, EditConfig(mode="bridge-template"), count_tokens=words)
    refused = edit_trace(trace, problem, hand_review(TEXT, steps[:3] + [(3, 3, "solved", [1])] + steps[4:]), EditConfig(mode="drop"), count_tokens=words)
    wrong = edit_trace(gold_traces(20, seed=2, wrong_share=1.0)[0].trace, problem, review, EditConfig())
    figures = edit_figures([edit, refused, wrong])
    # TEXT has 20 words; the edit drops "Let me restate: A has 2." (6) and adds the 9-word bridge.
    assert edit.tokens_before == 20 and edit.tokens_after == 23 and edit.useful_steps == 4
    assert figures == figures | {
        "traces": 3, "trained_on": 2, "edited": 1, "unchanged": 1, "skipped": 1, "skipped_by_reason": {"not solved": 1},
        "tokens_per_trace_before": 20, "tokens_per_trace_after": 21.5, "units": 10, "units_dropped": 1,
        "fraction_units_dropped": 0.1, "bridges": 1, "refused_drops": 1, "traces_with_refused_drops": 1,
        "tokens_per_insight_before": 20 / 4, "tokens_per_insight_after": (23 / 4 + 20 / 4) / 2,
    }  # fmt: skip
    write_jsonl(tmp_path / "edits.jsonl", [edit, refused, wrong])
    assert read_jsonl(tmp_path / "edits.jsonl", Edit) == [edit, refused, wrong]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "rewrite"}, "unknown edit mode"),
        ({"arm": "grpo"}, "unknown arm"),
        ({"drop": ("irrelevant", "boring")}, "unknown contribution"),
        ({"drop": ("solved",)}, "cut the solution"),
        ({"max_bridge_chars": 3}, "max_bridge_chars"),
    ],
)
def test_edit_config_errors_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EditConfig(**kwargs)
