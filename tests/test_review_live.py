"""LLM reviewers over real HTTP: `transformers serve` (an OpenAI-compatible server, from
`transformers[serving]`) runs the embedded SmolLM2-135M-Instruct on the CPU, and the
OpenAI-compatible backend talks to it through the official SDK.

A 135M model cannot follow the review protocol, so these tests exercise what happens then:
an answer that fails validation, a repair turn that shows the error, a failed-review record
with the real token usage, a cached re-run that makes no call, and `dca review` end to end.
The server is started once for the module (about 10 s) on a free localhost port.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from dca.cli import main as dca_main
from dca.records import Review
from dca.files import read_jsonl, write_jsonl
from dca.review import ReviewCache, ReviewItem, ReviewRunner
from dca.review.config import ReviewerSpec
from dca.segment import segment
from review_servers import make_traces

pytestmark = pytest.mark.slow

PROBLEMS, TRACES = make_traces(2, seed=5, irrelevant_rate=0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_model():
    """(base_url, model name) of `transformers serve` running the embedded checkpoint."""
    from dca.model import ensure_embedded_checkpoint

    checkpoint = str(ensure_embedded_checkpoint())
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.fail("the `transformers` command is missing: pip install 'transformers[serving]'")
    port = _free_port()
    process = subprocess.Popen(
        [executable, "serve", checkpoint, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--default-seed", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited: {process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not become healthy within 180 s")
            time.sleep(0.5)
        yield url + "/v1", checkpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def local_spec(base_url: str, model: str, **overrides) -> ReviewerSpec:
    settings = dict(
        name="smollm",
        backend="openai",
        model=model,
        base_url=base_url,
        params={"max_tokens": 32, "temperature": 0},
        timeout=120,
        max_attempts=2,
        repair_attempts=1,
        concurrency=1,
    )
    return ReviewerSpec(**{**settings, **overrides})


def review_once(spec, cache):
    by_id = {p.id: p for p in PROBLEMS}
    item = ReviewItem(problem=by_id[TRACES[0].problem_id], trace=TRACES[0], units=segment(TRACES[0].completion))

    async def go():
        runner = ReviewRunner([spec], cache=cache)
        try:
            return await runner.review(spec.name, item), runner.stats[spec.name]
        finally:
            await runner.aclose()

    return asyncio.run(go())


def test_a_small_model_gets_a_repair_turn_then_a_failed_review_and_the_rerun_is_cached(served_model, tmp_path):
    base_url, model = served_model
    spec = local_spec(base_url, model)
    review, stats = review_once(spec, ReviewCache(tmp_path / "cache.sqlite"))
    print(f"status {review.status}: {review.error}; answer excerpt {review.metadata.get('answer_excerpt', '')[:200]!r}")
    assert stats.requests == stats.answered_calls  # the server answered every request
    if review.status == "ok":  # the model happened to follow the protocol: a valid review
        assert review.steps and review.metadata["protocol"].startswith("dca-review/")
    else:
        assert review.metadata["failure"] == "invalid_answer", review.error
        assert stats.answered_calls == 2  # the answer and one repair turn
        assert review.error.startswith("invalid_answer: invalid answer after 2 turn(s):")
        assert review.unreviewed_units == [u.index for u in review.units]
    # Token usage comes from the real server; the second turn re-sends the first.
    assert review.usage["input_tokens"] > 100 and 0 < review.usage["output_tokens"] <= 2 * 32

    again, stats_again = review_once(spec, ReviewCache(tmp_path / "cache.sqlite"))
    if review.status == "ok":  # answers that parsed are served from the cache
        assert stats_again.requests == 0 and stats_again.cached_calls == stats.answered_calls
    else:  # only answers that parse are cached: the re-run asks the model again (issue 24)
        assert stats_again.requests == stats.requests and stats_again.cached_calls == 0
    assert (again.status, again.error, again.steps) == (review.status, review.error, review.steps)  # greedy


def test_dca_review_against_the_local_server(served_model, tmp_path, capsys):
    base_url, model = served_model
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    reviewers = [
        {"name": "oracle", "backend": "oracle"},
        {"name": "smollm", "backend": "openai", "model": model, "base_url": base_url,
         "params": {"max_tokens": 24, "temperature": 0}, "repair_attempts": 0, "timeout": 120,
         "price": {"input": 0.1, "output": 0.2}},
    ]  # fmt: skip
    (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": reviewers}))
    argv = ["review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", str(tmp_path / "reviewers.yaml"),
            "--out", str(tmp_path / "reviews.jsonl"), "--cache", str(tmp_path / "cache.sqlite"),
            "--summary-json", str(tmp_path / "summary.json")]  # fmt: skip
    assert dca_main(argv) == 0
    reviews = read_jsonl(tmp_path / "reviews.jsonl", Review)
    assert sorted((r.trace_id, r.reviewer) for r in reviews) == sorted((t.id, n) for t in TRACES for n in ("oracle", "smollm"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    smollm = summary["reviewers"]["smollm"]
    assert smollm["new_calls"] == 2 and smollm["input_tokens"] > 0 and smollm["cost_usd"] > 0
    assert smollm["ok"] + smollm["failed"] == 2 and sum(smollm["failed_by_reason"].values()) == smollm["failed"]
    assert "smollm" in capsys.readouterr().out
