"""The trainer with a reviewer from a reviewers YAML file: TrainConfig names it, `run_training`
sends every completion through the review runner, and failed reviews fall back to uniform
credit and are counted."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from dca.errors import UserError
from dca.records import Credit, Review
from dca.files import read_jsonl
from dca.review import LLMReviewer, OracleReviewer, ReferenceReviewer, close_reviewers
from dca.train.config import TrainConfig, load_train_config
from dca.train.run import make_reviewers, run_training
from review_servers import ReviewServer


def reviewers_file(tmp_path, server_url="http://127.0.0.1:9/v1", **llm):
    path = tmp_path / "reviewers.yaml"
    entries = [
        {"name": "my-oracle", "backend": "oracle"},
        {"name": "llm", "backend": "openai", "model": "m", "base_url": server_url, "timeout": 5,
         "max_attempts": 2, "backoff_base": 0.01, **llm},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"reviewers": entries}))
    return path


def test_config_names_builtin_or_declared_reviewers(tmp_path, monkeypatch):
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    (oracle,) = make_reviewers(TrainConfig())
    assert isinstance(oracle.inner, OracleReviewer) and oracle.name == "oracle"
    (reference,) = make_reviewers(TrainConfig(reviewer="reference"))
    assert isinstance(reference.inner, ReferenceReviewer)
    assert [type(r.inner) for r in make_reviewers(TrainConfig(reviewer=["oracle", "reference"]))] == [OracleReviewer, ReferenceReviewer]
    with pytest.raises(ValidationError, match="named once"):
        TrainConfig(reviewer=["oracle", "oracle"])
    with pytest.raises(ValidationError, match="rule"):
        TrainConfig(reviewer=["oracle", "reference"], consensus_rule="most")
    with pytest.raises(ValidationError, match="reviewers_file"):
        TrainConfig(reviewer="llm")
    path = reviewers_file(tmp_path)
    (oracle,) = make_reviewers(TrainConfig(reviewer="my-oracle", reviewers_file=str(path)))
    assert isinstance(oracle.inner, OracleReviewer) and oracle.name == "my-oracle"
    (llm,) = make_reviewers(TrainConfig(reviewer="llm", reviewers_file=str(path)))
    try:
        assert isinstance(llm, LLMReviewer) and llm.name == "llm"
    finally:
        close_reviewers([llm])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"reviewer": "nobody", "reviewers_file": str(path)}))
    with pytest.raises(UserError, match="no reviewer 'nobody'"):
        run_training(load_train_config(config), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def test_training_with_an_llm_reviewer_that_fails_falls_back_to_uniform(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    with ReviewServer(lambda request, attempt: "server_error") as server:
        config = TrainConfig(
            model=str(tiny_model_dir),
            reviewer="llm",
            reviewers_file=str(reviewers_file(tmp_path, server.url + "/v1")),
            problems={"synthetic": {"count": 2, "seed": 1}},
            grpo={"steps": 1, "num_generations": 2, "max_completion_length": 12, "learning_rate": 1e-4},
        )
        summary, run = run_training(config, tmp_path / "run", log=lambda message: None)
        requests = len(server.requests)
    reviews = read_jsonl(run.file("reviews.jsonl"), Review)
    credits = read_jsonl(run.file("credits.jsonl"), Credit)
    assert len(reviews) == len(credits) == 2
    assert all(r.reviewer == "llm" and r.status == "failed" and r.metadata["failure"] == "server_error" for r in reviews)
    assert all(c.fallback and c.fallback.startswith("review failed") for c in credits)
    assert requests == 2 * 2  # two completions, two attempts each
    assert summary["train"]["reviews_failed"] == 2 and summary["train"]["fallbacks"] == 2
    assert yaml.safe_load(run.file("config.yaml").read_text())["reviewer"] == "llm"
    assert json.loads(run.file("run.json").read_text())["status"] == "finished"
