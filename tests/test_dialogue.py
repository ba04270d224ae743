"""Dialogue reviews: questions, the turn limit, the transcript in records and the viewer."""

from __future__ import annotations

import asyncio
import json

from dca.records import DialogueTurn, Review, read_jsonl, to_dict, write_jsonl
from dca.report import ReportInputs, render_report
from dca.review.dialogue import NO_MORE_QUESTIONS, Reply, converse, dialogue_instructions, parse_question
from dca.review.local import lines_grammar, question_grammar, _questions_allowed
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

    async def always_asks(messages):
        calls.append(messages)
        return _Generation("QUESTION 0: and why that?")

    answerer = _EchoAnswerer()
    conversation = asyncio.run(converse(always_asks, [{"role": "user", "content": "review"}], gold.problem, gold.trace, units, max_questions=2, answerer=answerer))
    assert len(calls) == 3 and len(answerer.asked) == 2  # two questions answered, then it must answer
    assert [t.role for t in conversation.transcript] == ["reviewer", "assistant", "reviewer", "assistant"]
    assert conversation.generation.text.startswith("QUESTION")  # the caller rejects this as an answer
    assert NO_MORE_QUESTIONS in conversation.messages[-1]["content"]
    assert conversation.reply_input_tokens == 10 and conversation.reply_output_tokens == 6


def test_a_question_about_a_missing_unit_counts_and_is_not_forwarded():
    gold, units = _gold()
    replies = iter(["QUESTION 99: what?", "0 given_fact indirect | ok"])

    async def call(messages):
        return _Generation(next(replies))

    answerer = _EchoAnswerer()
    conversation = asyncio.run(converse(call, [{"role": "user", "content": "r"}], gold.problem, gold.trace, units, max_questions=2, answerer=answerer))
    assert answerer.asked == [] and conversation.transcript[0].unit is None and "no such unit" in conversation.transcript[1].text


def test_the_hf_grammar_admits_a_question_only_while_questions_are_left():
    first = [{"role": "system", "content": "s"}, {"role": "user", "content": "Solution, in 3 units (0 to 2):\n" + dialogue_instructions(2)}]
    assert _questions_allowed(first)
    later = [*first, {"role": "assistant", "content": "QUESTION 0: x"}, {"role": "user", "content": "The student replies: y\nYou may ask 1 more question(s), or answer now."}]
    assert _questions_allowed(later)
    done = [*first, {"role": "assistant", "content": "QUESTION 0: x"}, {"role": "user", "content": f"The student replies: y\n{NO_MORE_QUESTIONS}"}]
    assert not _questions_allowed(done)
    assert not _questions_allowed([{"role": "user", "content": "Solution, in 3 units (0 to 2):"}])
    grammar = question_grammar(lines_grammar(3, 3, 2, 8))
    assert grammar.startswith("root ::= answer | question") and "answer ::= line0" in grammar


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
