"""Paid reviewer APIs, called for real. Skipped unless selected with ``-m paid`` and the key is set:

    OPENAI_API_KEY=... ANTHROPIC_API_KEY=... .venv/bin/python -m pytest tests/test_review_paid.py -m paid
"""

from __future__ import annotations

import asyncio
import os

import pytest

from dca.review import ReviewItem, ReviewRunner
from dca.review.config import ReviewerSpec
from dca.segment import segment
from review_servers import make_traces

pytestmark = pytest.mark.paid

MODELS = {"openai": ("OPENAI_API_KEY", "gpt-4o-mini"), "anthropic": ("ANTHROPIC_API_KEY", "claude-haiku-4-5")}


@pytest.mark.parametrize("backend", sorted(MODELS))
def test_a_frontier_reviewer_follows_the_protocol(backend, request):
    key_env, model = MODELS[backend]
    if "paid" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("paid API test: select it with -m paid")
    if not os.environ.get(key_env):
        pytest.skip(f"set {key_env} to run it")
    problems, traces = make_traces(1, seed=7, irrelevant_rate=0.5)
    item = ReviewItem(problem=problems[0], trace=traces[0], units=segment(traces[0].completion))
    spec = ReviewerSpec(name=backend, backend=backend, model=model, params={"max_tokens": 400, "temperature": 0}, timeout=60)

    async def go():
        runner = ReviewRunner([spec])
        try:
            return await runner.review(backend, item)
        finally:
            await runner.aclose()

    review = asyncio.run(go())
    assert review.status == "ok", review.error
    assert review.steps and review.usage["output_tokens"] > 0
