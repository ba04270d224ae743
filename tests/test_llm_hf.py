"""The ``hf`` backend decodes under the grammar its caller gives, or none.

One reviewers-YAML entry with ``backend: hf`` on the tiny random model (`tiny_model_dir`) serves
as the LLM judge, as a bridge writer in a ``bridge-llm`` edit, and as a reviewer. The judge and
the bridges give no grammar: their text is exactly the model's unconstrained greedy text
(recomputed here with plain ``model.generate``), never the review answer's line format. The
reviewer gives the review grammar, so its random weights still write an answer that parses.
"""

from __future__ import annotations

import re

import pytest
import yaml

from dca.domains.judge import JUDGE_PROTOCOL, Judge, JudgeFailed, JudgeVerdict, generate_open_ended, judge_messages
from dca.edit import EditConfig, LLMBridgeWriter, bridge_messages, edit_trace
from dca.model import load_model
from dca.review import BuildContext, OracleReviewer, ReviewCache, ReviewItem, build_reviewer, close_reviewers, load_reviewers, review_batch
from dca.review.grammar import ReviewGrammar
from dca.segment import segment
from gold_traces import gold_traces

#: One or more lines of the review protocol's line form (what the review grammar admits).
REVIEW_LINES = re.compile(r"((\d+ )?[a-z]{2}( \d+)*( \| [^\n]*)?\n)+")
MAX_NEW_TOKENS = 400


@pytest.fixture(scope="module")
def hf_spec(tiny_model_dir, tmp_path_factory):
    """The entry, read from a reviewers YAML as a user would write it (grammar bounds included)."""
    path = tmp_path_factory.mktemp("reviewers") / "reviewers.yaml"
    params = {"max_new_tokens": MAX_NEW_TOKENS, "one_step_per_unit": True, "max_reason_chars": 2, "max_depends": 1}
    path.write_text(yaml.safe_dump({"reviewers": [{"name": "tiny", "backend": "hf", "model": str(tiny_model_dir), "params": params, "repair_attempts": 0}]}))
    (spec,) = load_reviewers(path)
    return spec


@pytest.fixture(scope="module")
def plain_greedy(tiny_model_dir):
    """The tiny model's greedy answer to chat messages through ``model.generate`` alone (no
    grammar, no logits processor), cut at the stop token as the backend cuts it."""
    model, tokenizer = load_model(str(tiny_model_dir))
    model.eval()

    def answer(messages: list[dict[str, str]]) -> str:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, temperature=None, top_p=None, top_k=None,
                                pad_token_id=tokenizer.eos_token_id)  # fmt: skip
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    return answer


def test_the_judge_decodes_without_the_review_grammar(hf_spec, plain_greedy, tmp_path):
    (task,) = generate_open_ended(1, 0)
    response = "Rainbows form when sunlight is refracted and reflected in raindrops."
    cache = ReviewCache(tmp_path / "cache.sqlite")
    judge = Judge(hf_spec, cache=cache)
    messages = judge_messages(task, response)
    try:
        with pytest.raises(JudgeFailed, match="not a valid verdict"):  # random weights write no verdict
            judge.verdict(task, response)
        assert judge.stats.failed_by_reason == {"invalid_answer": 1} and judge.client.stats.answered == 1
        # An invalid verdict is not cached (issue 24): the same call asks the model again.
        text = judge.client.generate_sync(messages, namespace=JUDGE_PROTOCOL, json_schema=JudgeVerdict.model_json_schema()).text
        assert judge.client.stats.answered == 2
    finally:
        judge.close()
    cache.close()
    assert text == plain_greedy(messages)  # the model's own text: nothing constrained it
    assert text and REVIEW_LINES.fullmatch(text) is None


class _Recording:
    """The real bridge writer, with what it was asked and what it wrote kept for the test."""

    def __init__(self, writer: LLMBridgeWriter):
        self.writer, self.name, self.written = writer, writer.name, []

    def write(self, context):
        text = self.writer.write(context)
        self.written.append((context, text))
        return text


def test_a_bridge_edit_decodes_without_the_review_grammar(hf_spec, plain_greedy):
    reviewed = [(g, OracleReviewer().review(g.problem, g.trace.completion, segment(g.trace.completion), trace_id=g.trace.id))
                for g in gold_traces(20, seed=5, wrong_share=0.0, irrelevant_rate=0.6)]  # fmt: skip
    # A trace with an irrelevant step to drop, so a bridge to write.
    gold, review = next((g, r) for g, r in reviewed if any(s.contribution == "irrelevant" for s in r.steps))
    writer = _Recording(LLMBridgeWriter(hf_spec))
    try:
        edit = edit_trace(gold.trace, gold.problem, review, EditConfig(mode="bridge-llm"), bridge_writer=writer)
    finally:
        writer.writer.close()
    assert edit.bridges >= 1 and len(writer.written) == edit.bridges
    # Random text is no valid bridge: the edit falls back to the template and says so, never crashes.
    assert len(edit.bridge_fallbacks) == edit.bridges
    for context, text in writer.written:
        assert text == plain_greedy(bridge_messages(context))
        assert REVIEW_LINES.fullmatch(text) is None


def test_a_review_by_the_same_entry_still_parses(hf_spec):
    grammar = ReviewGrammar.from_spec(hf_spec)
    items = [ReviewItem(problem=g.problem, trace=g.trace, units=segment(g.trace.completion)) for g in gold_traces(4, seed=5)]
    items = [item for item in items if grammar.steps(len(item.units)) == len(item.units)]  # every unit fits the budget
    assert len(items) >= 2  # (dca-review/4's line form: all four fit)
    context = BuildContext()
    reviewer = build_reviewer(hf_spec, context)
    try:
        (reviews,) = review_batch([reviewer], items)
    finally:
        close_reviewers(list(context.built.values()))
    for review, item in zip(reviews, items):
        assert review.status == "ok", review.error  # one line per unit under the grammar: always parses
        assert [(s.first_unit, s.last_unit) for s in review.steps] == [(i, i) for i in range(len(item.units))]
