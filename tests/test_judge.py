"""Open-ended tasks: the LLM judge decides the reward through the one LLM client; a failed
judgement gives no reward and is counted. Server tests use a local OpenAI-compatible server."""

from __future__ import annotations

import json
import os

import pytest

from dca.domains import DOMAINS, check
from dca.domains.judge import UNJUDGED, JudgeFailed, generate_open_ended, load_open_ended, parse_verdict, response_of
from dca.errors import UserError
from dca.records import OUTCOMES


def test_open_ended_domain_and_tasks(tmp_path):
    domain = DOMAINS["open-ended"]
    assert domain.needs_judge and domain.supports()["generator"] and domain.supports()["loader"]
    tasks = generate_open_ended(5, 3)
    assert tasks == generate_open_ended(5, 3) and all(t.metadata["rubric"] and t.domain == "open-ended" for t in tasks)
    file = tmp_path / "tasks.jsonl"
    file.write_text(json.dumps({"question": "Explain rainbows.", "rubric": ["Mentions refraction."], "reference": "Light bends."}) + "\n")
    (task,) = load_open_ended(str(file))
    assert task.metadata["reference"] == "Light bends." and task.metadata["rubric"] == ["Mentions refraction."]
    file.write_text(json.dumps({"question": "Explain rainbows."}) + "\n")
    with pytest.raises(ValueError, match="rubric"):
        load_open_ended(str(file))
    with pytest.raises(UserError, match="does not exist"):
        load_open_ended(str(tmp_path / "none.jsonl"))


def test_verdicts_responses_and_no_judge():
    assert parse_verdict('```json\n{"score": 8, "reason": "good"}\n```').score == 8
    for text in ("great answer!", '{"score": 11, "reason": "x"}', '{"score": 5}', '{"score": 5, "reason": "x", "extra": 1}'):
        with pytest.raises(JudgeFailed):
            parse_verdict(text)
    text = "Plan: keep it short.\nAnswer: The sky scatters blue light.\nIt is Rayleigh scattering."
    response, span = response_of(text)
    assert response == "The sky scatters blue light.\nIt is Rayleigh scattering." and text[span[0] :].startswith("Answer:")
    assert response_of("no marker") is None and "judge_failed" in OUTCOMES

    (task,) = generate_open_ended(1, 0)
    before = UNJUDGED.failed
    result = check(task, "Answer: something")
    assert (result.outcome, result.reward) == ("judge_failed", 0.0) and UNJUDGED.failed == before + 1
    assert check(task, "nothing").outcome == "format_failure"


def test_training_config_needs_a_judge_for_open_ended(tmp_path, tiny_model_dir):
    from dca.train.config import TrainConfig
    from dca.train.run import run_training

    with pytest.raises(ValueError, match="reward: judge needs judge"):
        TrainConfig.model_validate({"reward": "judge"})
    config = TrainConfig.model_validate({"model": str(tiny_model_dir), "problems": {"domain": {"name": "open-ended", "count": 2}}})
    with pytest.raises(UserError, match="open-ended problems have no verifier"):
        run_training(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written


# ---------------------------------------------------------------------------------------------
# Against a local OpenAI-compatible server


def _judge_answer(request: dict):
    from llm_server import user_text

    text = user_text(request)
    response = text.split("<response>", 1)[1]
    if "GOOD" in response:
        return json.dumps({"score": 9, "reason": "meets the rubric"})
    if "MEH" in response:
        return json.dumps({"score": 4, "reason": "misses criteria"})
    if "BROKEN" in response:
        return "I liked it a lot!"
    return 400


def test_judge_rewards_through_the_llm_client(tmp_path, monkeypatch):
    from llm_server import ScriptedServer, reviewers_yaml

    from dca.domains.judge import Judge, use_judge
    from dca.review import ReviewCache, load_reviewers
    from dca.train.grpo_trainer import domain_reward

    monkeypatch.setenv("DCA_TEST_KEY", "sk-judge-secret")
    (task,) = generate_open_ended(1, 0)
    with ScriptedServer(_judge_answer) as server:
        (spec,) = load_reviewers(reviewers_yaml(tmp_path / "judge.yaml", server.url, name="judge"), only=["judge"])
        judge = Judge(spec, cache=ReviewCache(tmp_path / "cache.sqlite"))
        with use_judge(judge):
            good = check(task, "Plan.\nAnswer: GOOD response")
            meh = check(task, "Answer: MEH response")
            broken = check(task, "Answer: BROKEN response")
            refused = check(task, "Answer: refused response")
            again = check(task, "Plan.\nAnswer: GOOD response")
            rewards = domain_reward({task.id: task})(
                completions=[f"Answer: GOOD {i}" for i in range(6)], problem_id=[task.id] * 6
            )  # judged concurrently, then scored
        judge.close()
        assert (good.outcome, good.reward) == ("correct", 0.9) and (meh.outcome, meh.reward) == ("wrong", 0.4)
        assert (broken.outcome, broken.reward) == ("judge_failed", 0.0) and (refused.outcome, refused.reward) == ("judge_failed", 0.0)
        assert again.reward == 0.9 and rewards == [0.9] * 6
        assert judge.stats.as_dict() == {"judged": 8, "failed": 2, "failed_by_reason": {"call_client_error": 1, "invalid_answer": 1}}
        assert len(server.requests) == 10  # the repeated GOOD response was not asked again
        assert "Rubric:" in server.requests[0]["messages"][1]["content"]
    assert b"sk-judge-secret" not in (tmp_path / "cache.sqlite").read_bytes()
    assert os.environ["DCA_TEST_KEY"] == "sk-judge-secret"
