"""Dialogue reviews: questions, the turn limit, the transcript in records and the viewer."""

from __future__ import annotations

import asyncio
import json

from dca.records import DialogueTurn, Review, to_dict
from dca.files import read_jsonl, write_jsonl
from dca.review.config import ReviewerSpec
from dca.report import ReportInputs, render_report
from dca.review.dialogue import NO_MORE_QUESTIONS, Reply, converse, parse_question
from dca.review.grammar import ReviewGrammar, lines_grammar, question_grammar
from dca.segment import segment
from gold_traces import gold_traces


class _Generation:
    def __init__(self, text: str):
        self.text = text


class _EchoAnswerer:
    name = "echo"

    def __init__(self):
        self.asked: list[tuple[int, str]] = []

    async def answer(self, problem, trace, units, unit, question):
        self.asked.append((unit, question))
        return Reply(text=f"<b>because</b> of unit {unit}", input_tokens=5, output_tokens=3)


def _gold():
    gold = gold_traces(1, seed=2)[0]
    return gold, segment(gold.trace.completion)


def test_questions_are_read_and_bounded():
    _, units = _gold()
    question = parse_question("QUESTION 1: why restate this?", units)
    assert question is not None and question.unit == 1 and question.text == "why restate this?"
    assert parse_question("question [0] : what is 3 x 4?\n", units).unit == 0
    assert parse_question(f"QUESTION {len(units)}: out of range", units).unit is None
    assert parse_question("0-1 given_fact indirect | restates", units) is None
    assert len(parse_question("QUESTION 0: " + "x" * 5000, units).text) == 300


def test_the_turn_limit_holds_when_the_reviewer_keeps_asking():
    gold, units = _gold()
    calls: list[list[dict]] = []
    may_ask: list[bool] = []

    async def always_asks(messages, questions):
        calls.append(messages)
        may_ask.append(questions)
        return _Generation("QUESTION 0: and why that?")

    answerer = _EchoAnswerer()
    conversation = asyncio.run(converse(always_asks, [{"role": "user", "content": "review"}], gold.problem, gold.trace, units, max_questions=2, answerer=answerer))
    assert len(calls) == 3 and len(answerer.asked) == 2  # two questions answered, then it must answer
    assert may_ask == [True, True, False]  # what an hf reviewer's grammar admits at each turn
    assert [t.role for t in conversation.transcript] == ["reviewer", "assistant", "reviewer", "assistant"]
    assert conversation.generation.text.startswith("QUESTION")  # the caller rejects this as an answer
    assert NO_MORE_QUESTIONS in conversation.messages[-1]["content"]
    assert conversation.reply_input_tokens == 10 and conversation.reply_output_tokens == 6


def test_a_question_about_a_missing_unit_counts_and_is_not_forwarded():
    gold, units = _gold()
    replies = iter(["QUESTION 99: what?", "0 given_fact indirect | ok"])

    async def call(messages, questions):
        return _Generation(next(replies))

    answerer = _EchoAnswerer()
    conversation = asyncio.run(converse(call, [{"role": "user", "content": "r"}], gold.problem, gold.trace, units, max_questions=2, answerer=answerer))
    assert answerer.asked == [] and conversation.transcript[0].unit is None and "no such unit" in conversation.transcript[1].text


def test_the_hf_grammar_admits_a_question_only_when_asked_to():
    grammar = question_grammar(lines_grammar(3, 3, 2, 8))
    assert grammar.startswith("root ::= answer | question") and "answer ::= line0" in grammar
    spec = ReviewerSpec(name="asker", backend="hf", model="m", dialogue={"max_questions": 2})
    review_grammar = ReviewGrammar.from_spec(spec)
    assert review_grammar.build(3, questions=True).text == question_grammar(review_grammar.build(3).text)
    assert "QUESTION" not in review_grammar.build(3).text


def _dialogue_review(units) -> Review:
    return Review(
        trace_id="t/0", reviewer="asker", units=units, steps=[],
        dialogue=[DialogueTurn(role="reviewer", unit=1, text="why <script>alert(1)</script>?"),
                  DialogueTurn(role="assistant", unit=1, text="to add & <i>check</i>")],
        metadata={"protocol": "dca-review/2", "questions": 1},
    )  # fmt: skip


def test_the_transcript_round_trips_through_the_record_and_old_records_load(tmp_path):
    _, units = _gold()
    review = _dialogue_review(units)
    write_jsonl(tmp_path / "r.jsonl", [review])
    (back,) = read_jsonl(tmp_path / "r.jsonl", Review)
    assert back == review and isinstance(back.dialogue[0], DialogueTurn)
    old = to_dict(review)
    del old["dialogue"]  # a record written before dialogues existed
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    (loaded,) = read_jsonl(tmp_path / "old.jsonl", Review)
    assert loaded.dialogue == []


def test_the_viewer_shows_the_transcript_escaped():
    gold, units = _gold()
    review = _dialogue_review(units)
    html = render_report(ReportInputs(traces=[gold.trace], problems=[gold.problem], reviews=[review]))
    assert "dialogue of asker (1 question(s))" in html
    assert "why &lt;script&gt;alert(1)&lt;/script&gt;?" in html and "<script>alert(1)" not in html
    assert "to add &amp; &lt;i&gt;check&lt;/i&gt;" in html


# --- through the registry, the LLM client, the cache and a local server ------------------------


def _reviewers_file(tmp_path, server, max_questions=2, repair_attempts=1):
    import yaml

    common = {"model": "test-model", "base_url": server.url + "/v1", "timeout": 5, "max_attempts": 1}
    path = tmp_path / "reviewers.yaml"
    path.write_text(yaml.safe_dump({"reviewers": [
        {"name": "asker", "backend": "openai", **common, "repair_attempts": repair_attempts,
         "dialogue": {"max_questions": max_questions, "answerer": "student"}},
        {"name": "student", "backend": "openai", **common},
    ]}))  # fmt: skip
    return path


def _is_answerer(request) -> bool:
    from dca.review.dialogue import LLMAnswerer

    return any(m.get("content") == LLMAnswerer.SYSTEM for m in request.get("messages", []))


def _items(n):
    from dca.review import ReviewItem

    golds = gold_traces(n, seed=5)
    return [ReviewItem(problem=g.problem, trace=g.trace, units=segment(g.trace.completion)) for g in golds]


def _review(path, items, cache):
    from dca.review import BuildContext, build_reviewer, close_reviewers, load_reviewers, review_batch

    (spec,) = load_reviewers(path, only=["asker"])
    context = BuildContext(cache=cache)
    reviewer = build_reviewer(spec, context)
    try:
        (reviews,) = review_batch([reviewer], items)
    finally:
        close_reviewers(list(context.built.values()))
    return reviews


def test_a_dialogue_review_round_trips_through_the_cache_the_record_and_the_viewer(tmp_path):
    from dca.review import ReviewCache
    from review_servers import ReviewServer

    def plan(request, attempt):
        if _is_answerer(request):
            return "reply"
        asked = sum(1 for m in request["messages"] if m["role"] == "assistant")
        return "ask" if asked < 1 else "ok"  # one question, then a valid answer

    items = _items(3)
    with ReviewServer(plan) as server:
        path = _reviewers_file(tmp_path, server)
        cache = ReviewCache(tmp_path / "cache.sqlite")
        first = _review(path, items, cache)
        requests = len(server.requests)
        again = _review(path, items, cache)
        assert len(server.requests) == requests  # the second run is served from the cache
    assert requests == 3 * 3  # per trace: question, reply, answer
    for review in first:
        assert review.status == "ok", review.error
        assert [(t.role, t.unit) for t in review.dialogue] == [("reviewer", 0), ("assistant", 0)]
        assert review.dialogue[0].text == "why do you <b>start</b> here?" and "asks" in review.dialogue[1].text
        assert review.metadata["protocol"] == "dca-review/2" and review.metadata["questions"] == 1
        assert review.usage["dialogue_output_tokens"] > 0 and review.usage["answered_calls"] == 2
    assert [r.dialogue for r in again] == [r.dialogue for r in first] and [r.steps for r in again] == [r.steps for r in first]
    assert all(r.usage["cached_calls"] == 2 for r in again)
    write_jsonl(tmp_path / "reviews.jsonl", first)
    assert read_jsonl(tmp_path / "reviews.jsonl", Review) == first
    html = render_report(ReportInputs(traces=[i.trace for i in items], problems=[i.problem for i in items], reviews=first))
    assert "why do you &lt;b&gt;start&lt;/b&gt; here?" in html and "<b>start</b>" not in html


def test_the_turn_limit_holds_with_a_server_that_keeps_asking(tmp_path):
    from review_servers import ReviewServer

    items = _items(1)
    with ReviewServer(lambda request, attempt: "reply" if _is_answerer(request) else "ask") as server:
        (review,) = _review(_reviewers_file(tmp_path, server, max_questions=2, repair_attempts=1), items, None)
        replies = sum(1 for r in server.requests if _is_answerer(r["body"]))
        asked = len(server.requests) - replies
    assert replies == 2 and asked == 2 + 1 + 1  # two questions, the answer turn, one repair turn
    assert review.status == "failed" and review.metadata["failure"] == "invalid_answer"
    assert [t.role for t in review.dialogue] == ["reviewer", "assistant"] * 2


def test_dialogue_settings_are_checked(tmp_path):
    import pytest
    import yaml

    from dca.errors import UserError
    from dca.review import load_reviewers

    bad = [
        {"name": "a", "backend": "oracle", "dialogue": {}},
        {"name": "a", "backend": "openai", "model": "m", "dialogue": {"answerer": "nobody"}},
        {"name": "a", "backend": "hf", "model": "m", "answer_format": "json", "dialogue": {}},
        {"name": "a", "backend": "openai", "model": "m", "dialogue": {"max_questions": 99}},
        {"name": "a", "backend": "oracle", "persona": "strict"},
    ]
    for entry in bad:
        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump({"reviewers": [entry]}))
        with pytest.raises(UserError):
            load_reviewers(path)


def test_a_local_hf_reviewer_holds_a_dialogue_with_the_policy(tiny_model_dir):
    from dca.review import BuildContext, ReviewerSpec, build_reviewer, close_reviewers, review_batch

    spec = ReviewerSpec(
        name="hf-asks", backend="hf", model=str(tiny_model_dir), repair_attempts=0,
        params={"max_new_tokens": 800, "one_step_per_unit": True, "max_reason_chars": 2},
        dialogue={"max_questions": 2, "answerer": "policy", "model": str(tiny_model_dir), "max_reply_tokens": 8},
    )  # fmt: skip
    context = BuildContext()
    reviewer = build_reviewer(spec, context)
    items = _items(2)
    try:
        (reviews,) = review_batch([reviewer], items)
    finally:
        close_reviewers(list(context.built.values()))
    for review, item in zip(reviews, items):
        assert review.status == "ok", review.error  # one line per unit: the answer always parses
        questions = [t for t in review.dialogue if t.role == "reviewer"]
        assert len(questions) <= 2 and review.metadata["questions"] == len(questions)
        assert all(t.unit is not None and 0 <= t.unit < len(item.units) for t in review.dialogue)  # the grammar names real units
        assert review.metadata["protocol"] == "dca-review/2" and review.metadata["answerer"].startswith("policy:")
