"""Persona tokens in the policy's tokenizer and checkpoint, and the `persona` reviewer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dca.errors import UserError
from dca.model import load_model
from dca.review.grammar import lines_grammar
from dca.review.persona import (
    DEFAULT_PERSONAS,
    Persona,
    PersonaReviewer,
    add_persona_tokens,
    load_personas,
    persona_prompt,
    resolve_personas,
    save_persona_checkpoint,
)
from dca.segment import segment
from gold_traces import gold_traces


def test_persona_tokens_are_added_initialised_saved_and_reloaded(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(str(tiny_model_dir))
    before = len(tokenizer)
    original = model.get_input_embeddings().weight.detach().clone()
    personas = resolve_personas(["strict", "lenient", {"name": "terse", "description": "a terse reviewer of arithmetic"}])
    ids = add_persona_tokens(model, tokenizer, personas)

    assert len(tokenizer) == before + 3 and sorted(ids.values()) == list(range(before, before + 3))
    weights = model.get_input_embeddings().weight.detach()
    assert weights.shape[0] >= before + 3 and torch.equal(weights[:before], original[:before])
    for persona in personas:  # each new row is the mean of its description's embeddings
        phrase = tokenizer(persona.description, add_special_tokens=False)["input_ids"]
        assert torch.allclose(weights[ids[persona.name]], original[phrase].mean(dim=0), atol=1e-6)
        assert tokenizer(f"x {persona.token} y", add_special_tokens=False)["input_ids"].count(ids[persona.name]) == 1
    assert add_persona_tokens(model, tokenizer, personas) == ids and len(tokenizer) == before + 3  # idempotent

    out = save_persona_checkpoint(model, tokenizer, personas, tmp_path / "ckpt")
    reloaded, reloaded_tokenizer = load_model(str(out))
    assert [p.name for p in load_personas(out)] == ["strict", "lenient", "terse"]
    assert load_personas(out)[2].description == "a terse reviewer of arithmetic"
    for persona in personas:
        token_id = reloaded_tokenizer.convert_tokens_to_ids(persona.token)
        assert token_id == ids[persona.name]
        assert torch.equal(reloaded.get_input_embeddings().weight[token_id], weights[token_id])
    assert load_personas(tiny_model_dir) == []


def test_persona_declarations_are_checked():
    assert [p.name for p in resolve_personas(["causal"])] == ["causal"]
    assert resolve_personas([{"name": "strict"}])[0].description == DEFAULT_PERSONAS["strict"]
    for bad in (["nobody"], ["strict", "strict"], [{"name": "Bad Name", "description": "x"}], [{"name": "x", "descr": "y"}], [], [3]):
        with pytest.raises(UserError):
            resolve_personas(bad)


def test_one_step_per_unit_grammar_names_each_unit_in_turn():
    grammar = lines_grammar(3, 3, 2, 8, one_step_per_unit=True)
    assert "line0 ::= function (" in grammar and "line2 ::= function (" in grammar  # no unit numbers: line i is unit i
    assert "unit" not in grammar.replace("unit ::=", "")  # (the rule is defined, never used)


@pytest.mark.parametrize("seed", [0, 1])
def test_persona_reviews_of_a_random_model_always_parse(tmp_path, seed):
    from dca.model import build_tiny_model

    model, tokenizer = load_model(str(build_tiny_model(tmp_path / "m", seed=seed)))
    reviewer = PersonaReviewer("self-strict", resolve_personas(["strict"])[0], model, tokenizer, params={"max_reason_chars": 4})
    golds = gold_traces(3, seed=seed)
    for gold in golds:
        units = segment(gold.trace.completion)
        review = reviewer.review(gold.problem, gold.trace.completion, units, trace_id=gold.trace.id)
        assert review.status == "ok", review.error
        assert [(s.first_unit, s.last_unit) for s in review.steps] == [(i, i) for i in range(len(units))]  # every unit, in order
        assert review.unreviewed_units == []
        assert review.metadata["persona"] == "strict" and review.usage["output_tokens"] > 0
        assert all(d < s.index for s in review.steps for d in s.depends_on)


def test_persona_reviews_are_decoded_in_batches_of_different_lengths(tiny_model_dir):
    """Five traces of different lengths in batches of 3 and 2 (left-padded, one grammar per
    row): every review parses and covers its own units, counts its own prompt tokens, and a
    trace with no units fails alone."""
    from dca.review import ReviewItem

    model, tokenizer = load_model(str(tiny_model_dir))
    persona = resolve_personas(["strict"])[0]
    batched = PersonaReviewer("self", persona, model, tokenizer, params={"max_reason_chars": 2, "batch_size": 3})
    single = PersonaReviewer("self", persona, model, tokenizer, params={"max_reason_chars": 2, "batch_size": 1})
    golds = gold_traces(5, seed=4)
    items = [ReviewItem(problem=g.problem, trace=g.trace, units=segment(g.trace.completion)) for g in golds]
    items[3] = ReviewItem(problem=items[3].problem, trace=items[3].trace, units=[])
    assert len({len(item.units) for item in items}) > 2  # rows of different lengths share a batch
    reviews = batched.review_items(items)
    assert [r.trace_id for r in reviews] == [item.trace.id for item in items]
    assert reviews[3].status == "failed" and reviews[3].metadata["failure"] == "reviewer_error"
    for item, review, alone in zip(items, reviews, single.review_items(items)):
        if not item.units:
            continue
        assert review.status == "ok", review.error
        assert [(s.first_unit, s.last_unit) for s in review.steps] == [(i, i) for i in range(len(item.units))]
        assert review.usage["input_tokens"] == alone.usage["input_tokens"]  # its own prompt, not the padding
        assert 0 < review.usage["output_tokens"] <= 1024 and review.usage["seconds"] > 0
    with pytest.raises(UserError, match="batch_size must be a positive integer"):
        PersonaReviewer("self", persona, model, tokenizer, params={"batch_size": 0})


def test_the_persona_never_sees_the_outcome_or_the_reward(tiny_model_dir):
    model, tokenizer = load_model(str(tiny_model_dir))
    persona = resolve_personas(["lenient"])[0]
    reviewer = PersonaReviewer("self", persona, model, tokenizer, params={"max_reason_chars": 2})
    gold = gold_traces(1, seed=3)[0]
    units = segment(gold.trace.completion)
    solved = dataclasses.replace(gold.trace, outcome="correct", reward=1.0, answer=gold.problem.answer)
    failed = dataclasses.replace(gold.trace, outcome="wrong", reward=-1.0, answer="12345")

    prompt = persona_prompt(tokenizer, gold.problem, units, persona)
    assert prompt.endswith(f"{persona.token}\n") and "Outcome" not in prompt and "Reference answer" not in prompt
    reviews = []
    for trace in (solved, failed):
        snapshot = dataclasses.asdict(trace)
        reviews.append(reviewer.review(gold.problem, trace.completion, units, trace_id=trace.id))
        assert dataclasses.asdict(trace) == snapshot  # the review changes no field of the trace (reward included)
    assert reviews[0].steps == reviews[1].steps  # same review whatever the outcome and reward


def test_persona_names_are_checked():
    with pytest.raises(ValueError):
        Persona(name="x", description=" ")


# --- from the reviewers YAML and in training ---------------------------------------------------


def test_a_persona_reviewer_from_the_reviewers_yaml_reviews_with_a_checkpoint(tiny_model_dir, tmp_path):
    import yaml

    from dca.review import BuildContext, ReviewItem, build_reviewers, close_reviewers, load_reviewers, review_batch

    path = tmp_path / "reviewers.yaml"
    path.write_text(yaml.safe_dump({"reviewers": [
        {"name": "self-causal", "backend": "persona", "persona": "causal", "model": str(tiny_model_dir), "params": {"max_reason_chars": 2}},
    ]}))  # fmt: skip
    specs = load_reviewers(path)
    context = BuildContext()
    reviewers = build_reviewers(specs, context)
    gold = gold_traces(1, seed=6)[0]
    try:
        ((review,),) = review_batch(reviewers, [ReviewItem(problem=gold.problem, trace=gold.trace, units=segment(gold.trace.completion))])
    finally:
        close_reviewers(reviewers)
    assert review.reviewer == "self-causal" and review.status == "ok" and review.metadata["persona"] == "causal"


def test_the_policy_reviews_its_own_completions_in_training_without_touching_the_reward(tiny_model_dir, tmp_path, monkeypatch):
    import json

    import yaml

    from dca.records import Credit, Review, Trace
    from dca.files import read_jsonl
    from dca.train.config import TrainConfig
    from dca.train.run import run_training

    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "reviewers.yaml"
    path.write_text(yaml.safe_dump({"reviewers": [{"name": "self-strict", "backend": "persona", "persona": "strict", "params": {"max_reason_chars": 2}}]}))
    config = TrainConfig(
        model=str(tiny_model_dir), reviewer="self-strict", reviewers_file=str(path),
        problems={"synthetic": {"count": 2, "seed": 1}},
        grpo={"steps": 1, "num_generations": 2, "max_completion_length": 16, "learning_rate": 1e-4},
    )  # fmt: skip
    summary, run = run_training(config, tmp_path / "run", log=lambda message: None)
    reviews = read_jsonl(run.file("reviews.jsonl"), Review)
    traces = read_jsonl(run.file("traces.jsonl"), Trace)
    credits = read_jsonl(run.file("credits.jsonl"), Credit)
    assert len(reviews) == len(credits) == 2 and all(r.reviewer == "self-strict" and r.metadata["persona"] == "strict" for r in reviews)
    assert all(r.status == "ok" for r in reviews), [r.error for r in reviews]
    assert all(t.reward == (1.0 if t.outcome == "correct" else 0.0) for t in traces)  # the domain's reward, nothing else
    for credit, trace in zip(credits, traces):  # credit spreads the advantage; it never adds to it
        assert credit.sequence_advantage == trace.advantage
    _, tokenizer = load_model(str(run.file("checkpoint")))
    assert "<|review:strict|>" in tokenizer.get_vocab()  # the persona token is saved with the trained policy
    assert [p.name for p in load_personas(run.file("checkpoint"))] == ["strict"]  # and declared in personas.json
    assert json.loads(run.file("run.json").read_text())["status"] == "finished"


def test_a_trace_longer_than_the_budget_is_a_failed_review_not_a_partial_one(tiny_model_dir):
    model, tokenizer = load_model(str(tiny_model_dir))
    reviewer = PersonaReviewer("self", resolve_personas(["strict"])[0], model, tokenizer, params={"max_new_tokens": 30, "max_reason_chars": 1})
    gold = gold_traces(1, seed=3)[0]
    units = segment(gold.trace.completion)
    assert 2 <= reviewer.grammar.steps(len(units)) < len(units)  # the budget holds some lines, not all
    review = reviewer.review(gold.problem, gold.trace.completion, units, trace_id=gold.trace.id)
    assert review.status == "failed" and review.metadata["failure"] == "uncovered_units" and review.steps == []
