"""The one LLM client (`dca.llm.LLMClient`) against a real local server through the real SDKs:
arbitrary prompts and JSON-schema output, the cache, retries with jitter and Retry-After,
non-retryable errors, timeouts, cost; and `dca edit`'s LLM bridges going through it."""

from __future__ import annotations

import asyncio
import random

import pytest

from dca.edit import BridgeContext, LLMBridgeWriter
from dca.llm import LLMCallFailed, LLMClient, LLMSpec, backoff_delay
from dca.review import ReviewCache, ReviewerSpec
from review_servers import ReviewServer

MESSAGES = [{"role": "system", "content": "You judge answers."}, {"role": "user", "content": "Is 2 + 2 = 4? Answer in JSON."}]
SCHEMA = {"type": "object", "properties": {"verdict": {"type": "boolean"}}, "required": ["verdict"]}


def client_spec(server: ReviewServer, **overrides) -> LLMSpec:
    settings = dict(backend="openai", model="judge", base_url=server.url + "/v1", api_key_env="DCA_TEST_KEY", timeout=2.0,
                    max_attempts=3, backoff_base=0.01, backoff_max=2.0, price={"input": 1.0, "output": 2.0})  # fmt: skip
    return LLMSpec(**{**settings, **overrides})


def first_attempt(action: str):
    return lambda request, attempt: action if attempt == 0 else "ok"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("DCA_TEST_KEY", "sk-test-key")


def test_any_prompt_with_a_json_schema_cached_and_costed(tmp_path):
    with ReviewServer() as server:
        for run in range(2):
            client = LLMClient.from_spec(client_spec(server), cache=ReviewCache(tmp_path / "c.sqlite"))
            generation = client.generate_sync(MESSAGES, namespace="judge-v1", json_schema=SCHEMA)
            client.close()
            if run == 0:
                assert not generation.cached and generation.requests == 1
                assert generation.cost == pytest.approx((generation.input_tokens * 1 + generation.output_tokens * 2) / 1e6) and generation.cost > 0
            else:
                assert generation.cached and generation.cost == 0 and client.stats.cached == 1
        (request,) = server.requests  # the second run was served from the cache
    body = request["body"]
    assert body["messages"] == MESSAGES and body["response_format"]["json_schema"]["schema"] == SCHEMA
    other = LLMClient.from_spec(client_spec(server))
    assert other.key(MESSAGES, namespace="judge-v1") != other.key(MESSAGES, namespace="judge-v2")
    assert other.key(MESSAGES, namespace="judge-v1") != other.key(MESSAGES, namespace="judge-v1", json_schema=SCHEMA)


def test_backoff_has_jitter_a_ceiling_and_respects_retry_after():
    spec = LLMSpec(backend="openai", model="m", backoff_base=1.0, backoff_max=5.0)
    rng = random.Random(0)
    waits = [backoff_delay(spec, 2, None, rng) for _ in range(200)]
    assert all(1.0 <= w <= 2.0 for w in waits) and len(set(waits)) == 200  # uniform in [half, all] of 2 s
    assert max(backoff_delay(spec, 10, None, rng) for _ in range(50)) <= 5.0  # capped at backoff_max
    assert backoff_delay(spec, 1, 3.0, rng) == 3.0  # Retry-After is a floor ...
    assert backoff_delay(spec, 1, 60.0, rng) == 5.0  # ... capped at backoff_max too


class RecordingRandom(random.Random):
    def __init__(self):
        super().__init__(1)
        self.draws = []

    def uniform(self, a, b):
        self.draws.append((a, b))
        return super().uniform(a, b)


def test_retries_draw_jitter_and_wait_for_retry_after():
    with ReviewServer(lambda request, attempt: "server_error" if attempt < 2 else "ok") as server:
        rng = RecordingRandom()
        client = LLMClient.from_spec(client_spec(server, backoff_base=0.05), rng=rng)
        generation = client.generate_sync(MESSAGES, namespace="t")
        client.close()
        assert len(server.requests) == 3
    assert generation.requests == 3 and generation.retries == 2 and client.stats.retries == 2
    assert rng.draws == [(0.5, 1.0), (0.5, 1.0)]  # one jittered wait per retry
    with ReviewServer(first_attempt("rate_limited"), retry_after="1") as server:
        client = LLMClient.from_spec(client_spec(server))
        client.generate_sync(MESSAGES, namespace="t")
        client.close()
        first, second = server.requests
    assert second["time"] - first["time"] >= 0.95  # backoff_base is 0.01 s: the wait is the server's


@pytest.mark.parametrize(("action", "kind", "requests"), [("unauthorized", "client_error", 1), ("timeout", "timeout", 2), ("server_error", "server_error", 2)])
def test_a_call_that_fails_for_good_raises_llm_call_failed(action, kind, requests):
    with ReviewServer(lambda request, attempt: action, hang_seconds=1.5) as server:
        client = LLMClient.from_spec(client_spec(server, max_attempts=2, timeout=0.5))

        async def go():
            try:
                return await client.generate(MESSAGES, namespace="t")
            finally:
                await client.aclose()

        with pytest.raises(LLMCallFailed) as failure:
            asyncio.run(go())
        assert len(server.requests) == requests
    assert failure.value.kind == kind and failure.value.requests == requests
    assert client.stats.failed == 1 and client.stats.failed_by_kind == {kind: 1}


def test_edit_bridges_go_through_the_client_with_its_retries(tmp_path):
    context = BridgeContext(
        question="Tom has 3 apples and buys 2 more. How many?", before="Tom has 3 apples.", previous_step="Tom has 3 apples.",
        dropped="The sky is blue.", dropped_contributions=["irrelevant"], after="3 + 2 = 5.",
    )  # fmt: skip
    with ReviewServer(first_attempt("rate_limited"), retry_after="0") as server:
        spec = ReviewerSpec(name="bridger", **client_spec(server).model_dump(exclude={"price"}), price={"input": 1, "output": 1})
        writer = LLMBridgeWriter(spec, cache=ReviewCache(tmp_path / "c.sqlite"))
        assert isinstance(writer.client, LLMClient)
        text = writer.write(context)
        again = writer.write(context)
        writer.close()
        assert len(server.requests) == 2  # a 429, its retry; the second bridge came from the cache
    assert text == again and text
    assert writer.stats["calls"] == 1 and writer.stats["retries"] == 1 and writer.stats["cached_calls"] == 1
    assert writer.stats["cost_usd"] > 0
    with ReviewServer(lambda request, attempt: "unauthorized") as server:
        writer = LLMBridgeWriter(ReviewerSpec(name="bridger", **client_spec(server).model_dump()))
        with pytest.raises(RuntimeError, match="client_error"):
            writer.write(context)
        writer.close()
        assert len(server.requests) == 1
    assert writer.stats["failed_calls"] == 1
