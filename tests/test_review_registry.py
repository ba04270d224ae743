"""The one reviewer registry: every backend is built from a reviewers YAML by `build_reviewers`,
used alike by the trainer, `dca review` and `dca eval`; bad declarations are one line and exit 2;
`review_many` and the trainer review concurrently within each reviewer's limits (counted at a
real local server)."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from dca.cli import main as dca_main
from dca.errors import UserError
from dca.records import Review
from dca.files import read_jsonl
from dca.review import (
    REGISTRY,
    BuildContext,
    CounterfactualReviewer,
    LLMReviewer,
    NoisyReviewer,
    OracleReviewer,
    ReferenceReviewer,
    ReviewItem,
    build_reviewers,
    close_reviewers,
    load_reviewers,
    review_batch,
)
from dca.llm.hf import HFBackend
from dca.review.registry import ProgrammaticReviewer
from dca.segment import segment
from review_servers import ReviewServer, make_traces

PROBLEMS, TRACES = make_traces(16)
BY_ID = {p.id: p for p in PROBLEMS}
ITEMS = [ReviewItem(problem=BY_ID[t.problem_id], trace=t, units=segment(t.completion)) for t in TRACES]


def llm(name: str, server: ReviewServer, backend: str = "openai", **extra) -> dict:
    return {
        "name": name, "backend": backend, "model": f"model-{name}", "base_url": server.url + ("/v1" if backend == "openai" else ""),
        "api_key_env": "DCA_TEST_KEY", "timeout": 10, "max_attempts": 2, "backoff_base": 0.01, **extra,
    }  # fmt: skip


def write_yaml(path, entries) -> str:
    path.write_text(yaml.safe_dump({"reviewers": entries}))
    return str(path)


def test_the_registry_builds_every_backend_from_yaml(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DCA_TEST_KEY", "sk-test-key")
    assert set(REGISTRY) == {"oracle", "reference", "noisy", "counterfactual", "persona", "hf", "openai", "anthropic"}
    with ReviewServer() as server:
        path = write_yaml(tmp_path / "r.yaml", [
            {"name": "o", "backend": "oracle"},
            {"name": "ref", "backend": "reference"},
            {"name": "noisy-o", "backend": "noisy", "inner": "o", "flip_rate": 1.0, "seed": 3},
            {"name": "cf", "backend": "counterfactual", "model": str(tiny_model_dir), "counterfactual": {"samples": 1, "temperature": 0, "max_new_tokens": 8}},
            {"name": "local", "backend": "hf", "model": str(tiny_model_dir)},
            llm("gpt", server),
            llm("claude", server, "anthropic"),
            {"name": "noisy-gpt", "backend": "noisy", "inner": "gpt", "flip_rate": 0.5},
        ])  # fmt: skip
        specs = load_reviewers(path)
        reviewers = build_reviewers(specs, BuildContext())
        try:
            by_name = {r.name: r for r in reviewers}
            assert list(by_name) == [s.name for s in specs]
            assert isinstance(by_name["o"].inner, OracleReviewer) and isinstance(by_name["ref"].inner, ReferenceReviewer)
            assert isinstance(by_name["cf"].inner, CounterfactualReviewer) and by_name["cf"].inner.config.samples == 1
            assert isinstance(by_name["local"], LLMReviewer) and isinstance(by_name["local"].client.backend, HFBackend)
            assert isinstance(by_name["gpt"], LLMReviewer) and isinstance(by_name["claude"], LLMReviewer)
            assert isinstance(by_name["noisy-o"], NoisyReviewer) and by_name["noisy-o"].inner is by_name["o"]  # shared, not rebuilt
            assert by_name["noisy-gpt"].inner is by_name["gpt"] and not by_name["noisy-gpt"].inline
            chosen = [by_name[n] for n in ("o", "noisy-o", "gpt", "claude", "noisy-gpt")]
            results = review_batch(chosen, ITEMS[:4])
        finally:
            close_reviewers(reviewers)
    for reviewer, reviews in zip(chosen, results):
        assert [r.reviewer for r in reviews] == [reviewer.name] * 4
        assert all(r.status == "ok" and r.steps for r in reviews), [r.error for r in reviews]
    oracle, noisy = results[0], results[1]
    assert all(n.metadata["noise"]["inner"] == "o" and n.metadata["flipped_units"] for n in noisy)
    assert [[s.contribution for s in r.steps] for r in oracle] != [[s.contribution for s in r.steps] for r in noisy]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "backend": "gpt-5"}, "unknown backend 'gpt-5'; choose from oracle, reference, noisy"),
        ({"name": "x", "backend": "noisy"}, "needs inner"),
        ({"name": "x", "backend": "noisy", "inner": "nobody"}, "inner 'nobody' is not declared"),
        ({"name": "x", "backend": "noisy", "inner": "x"}, "cycle"),
        ({"name": "x", "backend": "noisy", "inner": "oracle", "flip_rate": 2}, "flip_rate"),
        ({"name": "x", "backend": "counterfactual", "counterfactual": {"samples": 0}}, "samples must be at least 1"),
        ({"name": "x", "backend": "oracle", "counterfactual": {"samples": 2}}, "for backend 'counterfactual' only"),
    ],
)
def test_a_bad_declaration_is_one_line_and_exit_2(tmp_path, capsys, entry, message):
    from dca.files import write_jsonl

    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    path = write_yaml(tmp_path / "r.yaml", [{"name": "oracle", "backend": "oracle"}, entry])
    argv = ["review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", path, "--out", str(tmp_path / "out.jsonl"), "--no-cache"]
    assert dca_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dca: error:") and message in err[0], err
    assert not (tmp_path / "out.jsonl").exists()
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({"reviewer": "x", "reviewers_file": path}))
    assert dca_main(["train", "--config", str(run_yaml), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_dca_review_runs_noisy_and_llm_reviewers_declared_in_yaml(tmp_path, capsys, monkeypatch):
    from dca.files import write_jsonl

    monkeypatch.setenv("DCA_TEST_KEY", "sk-test-key")
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    with ReviewServer() as server:
        path = write_yaml(tmp_path / "r.yaml", [
            {"name": "oracle", "backend": "oracle"},
            {"name": "noisy", "backend": "noisy", "inner": "oracle", "flip_rate": 0.5},
            llm("gpt", server, concurrency=4),
        ])  # fmt: skip
        argv = ["review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", path, "--out", str(tmp_path / "out.jsonl"), "--no-cache"]
        assert dca_main(argv) == 0
        assert len(server.requests) == len(TRACES)
    reviews = read_jsonl(tmp_path / "out.jsonl", Review)
    assert [r.reviewer for r in reviews[:3]] == ["oracle", "noisy", "gpt"] and len(reviews) == 3 * len(TRACES)
    assert all(r.status == "ok" for r in reviews)


def test_review_many_keeps_to_each_reviewers_concurrency_and_rate(monkeypatch):
    monkeypatch.setenv("DCA_TEST_KEY", "sk-test-key")
    from dca.review import ReviewerSpec, build_reviewer

    with ReviewServer(lambda request, attempt: "delay", delay_seconds=0.3) as server:
        reviewer = build_reviewer(ReviewerSpec(**llm("gpt", server, concurrency=3)))

        async def go():
            try:
                return await reviewer.review_many(ITEMS[:12])
            finally:
                await reviewer.aclose()

        reviews = asyncio.run(go())
        assert server.max_in_flight == 3 and reviewer.stats.max_in_flight == 3
    assert [r.trace_id for r in reviews] == [i.trace.id for i in ITEMS[:12]] and all(r.status == "ok" for r in reviews)
    with ReviewServer() as server:
        reviewer = build_reviewer(ReviewerSpec(**llm("gpt", server, concurrency=50, requests_per_minute=600)))
        reviews = review_batch([reviewer], ITEMS[:6])[0]
        close_reviewers([reviewer])
        times = [r["time"] for r in server.requests]
    assert len(times) == 6 and times[-1] - times[0] >= 0.45  # one start per 0.1 s


def test_the_trainer_reviews_a_batch_concurrently_within_each_reviewers_limit(tmp_path, tiny_model_dir, monkeypatch):
    """8 completions x 2 LLM reviewers with concurrency 3 and 8: a step holds 3 + 8 calls in
    flight at once (serial review would hold one)."""
    from dca.train.config import TrainConfig
    from dca.train.run import run_training

    monkeypatch.setenv("DCA_TEST_KEY", "sk-test-key")
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    with ReviewServer(lambda request, attempt: "delay", delay_seconds=0.5) as server:
        path = write_yaml(tmp_path / "r.yaml", [llm("a", server, concurrency=3), llm("b", server, concurrency=8)])
        config = TrainConfig(
            model=str(tiny_model_dir), reviewer=["a", "b"], reviewers_file=path,
            problems={"synthetic": {"count": 2, "seed": 1}},
            grpo={"steps": 1, "num_generations": 4, "prompts_per_step": 2, "max_completion_length": 12, "learning_rate": 1e-4},
        )  # fmt: skip
        summary, run = run_training(config, tmp_path / "run", log=lambda message: None)
        assert server.max_in_flight_by_model == {"model-a": 3, "model-b": 8}
        assert server.max_in_flight == 11 and len(server.requests) == 16
    reviews = read_jsonl(run.file("reviews.jsonl"), Review)
    assert len(reviews) == 16 and all(r.status == "ok" for r in reviews)
    assert summary["train"]["reviews_failed"] == 0


def test_auto_is_resolved_in_one_place_for_every_caller():
    """`dca eval`, the experiment's curve and its final evaluation all take ``auto`` from
    `resolve_reviewer_name` (the experiment used to have a rule of its own that gave logic
    problems no reviewer)."""
    from dca.domains.sources import load_set, parse_set_spec
    from dca.records import Problem, ReferenceStep
    from dca.review import resolve_reviewer_name, reviewer_for

    synthetic = load_set(parse_set_spec("synthetic-easy:2"))
    logic = load_set(parse_set_spec("logic:2"))
    gsm8k = [Problem(id="g", source="gsm8k", question="?", answer="2", reference_steps=[ReferenceStep(text="1 + 1 = 2")])]
    open_ended = [Problem(id="o", source="test", question="?", answer="2")]
    assert resolve_reviewer_name("auto", synthetic) == "oracle"
    assert resolve_reviewer_name("auto", logic) == "oracle"
    assert resolve_reviewer_name("auto", gsm8k) == "reference"
    assert resolve_reviewer_name("auto", open_ended) is None and resolve_reviewer_name("auto", []) is None
    assert resolve_reviewer_name("auto", synthetic + gsm8k) is None  # neither rule covers the mix
    assert resolve_reviewer_name("none", synthetic) is None and resolve_reviewer_name("reference", synthetic) == "reference"
    reviewer = reviewer_for("auto", logic)
    assert isinstance(reviewer, ProgrammaticReviewer) and reviewer.name == "oracle"
    assert reviewer_for("auto", open_ended) is None
    with pytest.raises(UserError, match="counterfactual samples must be at least 1"):
        reviewer_for("counterfactual", synthetic, counterfactual={"samples": 0})


def test_review_traces_is_review_batch_and_records_failures():
    """The one review loop: every trace by every reviewer, reviewer by reviewer; a reviewer that
    raises gives failed reviews marked with their kind, never an exception."""
    from dca.review import builtin_spec, review_traces

    class Broken:
        name = "broken"

        def review(self, problem, trace_completion, units, *, trace_id):
            raise RuntimeError("no answer")

    (oracle,) = build_reviewers([builtin_spec("oracle")])
    reviews = review_traces([oracle, Broken()], TRACES[:3], BY_ID)
    assert [(r.reviewer, r.trace_id) for r in reviews] == [(n, t.id) for n in ("oracle", "broken") for t in TRACES[:3]]
    assert all(r.status == "ok" for r in reviews[:3])
    assert all(r.status == "failed" and r.metadata["failure"] == "reviewer_error" and "no answer" in r.error for r in reviews[3:])
