"""The review runner against a local HTTP server that injects faults (429 with Retry-After,
500, hangs past the timeout, dropped connections, invalid and out-of-range answers), through
the real openai and anthropic SDKs; the SQLite cache; `dca review`; the trainer adapter."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml

from conftest import dca_in_process, one_line_error
from dca.cli import main as dca_main
from dca.errors import UserError
from dca.records import Review
from dca.files import read_jsonl, write_jsonl
from dca.review import BuildContext, LLMReviewer, ReviewCache, ReviewItem, ReviewRunner, build_reviewer
from dca.llm.cache import cache_key
from dca.review.config import ReviewerSpec
from dca.segment import segment
from review_servers import FAULTS, ReviewServer, fault_of, fault_plan, first_user_text, is_repair, make_traces, persistent

PROBLEMS, TRACES = make_traces(200)
BY_ID = {p.id: p for p in PROBLEMS}
ITEMS = [ReviewItem(problem=BY_ID[t.problem_id], trace=t, units=segment(t.completion)) for t in TRACES]
SECRET = "sk-test-DO-NOT-LEAK-4f9a2c"


def spec(server: ReviewServer, backend: str = "openai", **overrides) -> ReviewerSpec:
    settings = dict(
        name="llm",
        backend=backend,
        model="test-model",
        base_url=server.url + ("/v1" if backend == "openai" else ""),
        timeout=1.0,
        max_attempts=3,
        backoff_base=0.01,
        backoff_max=2.0,
        concurrency=8,
        price={"input": 1.0, "output": 2.0},
    )
    return ReviewerSpec(**{**settings, **overrides})


def run(specs, items, cache=None) -> tuple[list[Review], dict]:
    async def go():
        runner = ReviewRunner(specs, cache=cache)
        try:
            return await runner.review_all(items), runner.stats
        finally:
            await runner.aclose()

    return asyncio.run(go())


def first_attempt(fault: str):
    return lambda request, attempt: fault if attempt == 0 else "ok"


def always(action: str):
    return lambda request, attempt: action


# --- retries, timeouts, failures -------------------------------------------------------------


def test_retry_after_is_honoured():
    with ReviewServer(first_attempt("rate_limited"), retry_after="1") as server:
        (review,), stats = run([spec(server)], ITEMS[:1])
        first, second = server.requests
    assert review.status == "ok" and stats["llm"].retries == 1
    assert second["time"] - first["time"] >= 0.95  # backoff_base is 0.01 s: the wait is the server's


@pytest.mark.parametrize("fault", ["rate_limited", "server_error", "timeout", "connection_error"])
def test_a_transient_fault_is_retried(fault):
    with ReviewServer(first_attempt(fault), retry_after="0", hang_seconds=2.5) as server:
        (review,), stats = run([spec(server)], ITEMS[:1])
        assert server.actions() == [fault, "ok"]
    assert review.status == "ok" and review.steps
    assert review.usage["requests"] == 2 and review.usage["answered_calls"] == 1
    assert stats["llm"].retries == 1


@pytest.mark.parametrize("fault", ["rate_limited", "server_error", "timeout", "connection_error"])
def test_a_persistent_fault_becomes_a_failed_review_after_bounded_attempts(fault):
    with ReviewServer(always(fault), retry_after="0", hang_seconds=2.5) as server:
        (review,), stats = run([spec(server, max_attempts=3)], ITEMS[:1])
        assert server.actions() == [fault] * 3
    assert review.status == "failed" and review.metadata["failure"] == fault
    assert review.error.startswith(f"{fault}: ") and "after 3 attempts" in review.error
    assert review.unreviewed_units == [u.index for u in ITEMS[0].units]
    assert stats["llm"].failed_by_reason == Counter({fault: 1})


def test_a_client_error_is_not_retried():
    with ReviewServer(always("unauthorized")) as server:
        (review,), _ = run([spec(server)], ITEMS[:1])
        assert server.actions() == ["unauthorized"]
    assert review.metadata["failure"] == "client_error" and "401" in review.error


def test_an_invalid_answer_gets_a_repair_turn_that_shows_the_error():
    with ReviewServer(lambda request, attempt: "ok" if is_repair(request) else "out_of_range") as server:
        (review,), _ = run([spec(server)], ITEMS[:1])
        repair = server.requests[1]["body"]["messages"]
    assert review.status == "ok" and review.metadata["repairs"] == 1
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "out of range" in repair[-1]["content"]
    assert review.usage["answered_calls"] == 2 and review.usage["input_tokens"] > 0


def test_repairs_are_bounded_then_the_review_fails():
    with ReviewServer(always("invalid_json")) as server:
        (review,), _ = run([spec(server, repair_attempts=2)], ITEMS[:1])
        assert len(server.requests) == 3
    assert review.status == "failed" and review.metadata["failure"] == "invalid_answer"
    assert "after 3 turn(s)" in review.error and review.metadata["answer_excerpt"].startswith("Sure!")


def test_concurrency_and_requests_per_minute_limits():
    delayed = always("delay")  # each answer takes 0.2 s
    with ReviewServer(delayed) as server:
        run([spec(server, concurrency=3)], ITEMS[:12])
        assert server.max_in_flight == 3
    with ReviewServer() as server:
        started = time.monotonic()
        run([spec(server, requests_per_minute=600, concurrency=50)], ITEMS[:6])  # one start per 0.1 s
        times = [r["time"] for r in server.requests]
        assert len(times) == 6 and times[-1] - times[0] >= 0.45 and time.monotonic() - started < 5


# --- the cache -------------------------------------------------------------------------------


def test_cache_makes_a_second_run_free_and_keeps_no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DCA_TEST_KEY", SECRET)
    cache_path = tmp_path / "cache.sqlite"
    with ReviewServer() as server:
        reviewer = spec(server, api_key_env="DCA_TEST_KEY")
        first, stats1 = run([reviewer], ITEMS[:10], ReviewCache(cache_path))
        assert len(server.requests) == 10
        assert all(r["headers"].get("authorization") == f"Bearer {SECRET}" for r in server.requests)
        second, stats2 = run([reviewer], ITEMS[:10], ReviewCache(cache_path))
        assert len(server.requests) == 10  # nothing new reached the server
    assert (stats1["llm"].answered_calls, stats1["llm"].cached_calls) == (10, 0)
    assert (stats2["llm"].answered_calls, stats2["llm"].cached_calls) == (0, 10)
    assert [r.steps for r in first] == [r.steps for r in second]
    assert all(r.usage["cost_usd"] == 0 for r in second) and stats1["llm"].cost > 0
    assert sqlite3.connect(cache_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes()


def test_cache_key_covers_what_changes_the_answer_and_nothing_else():
    base = dict(backend="openai", base_url="http://h/v1", model="m", params={"temperature": 0}, protocol="p/1", messages=[{"role": "user", "content": "x"}])
    key = cache_key(**base)
    assert cache_key(**{**base, "base_url": "http://h/v1/"}) == key
    assert cache_key(**{**base, "base_url": f"http://u:{SECRET}@h/v1?api_key={SECRET}"}) == key  # credentials are not hashed
    for change in [
        {"backend": "anthropic"},
        {"base_url": "http://other/v1"},
        {"model": "m2"},
        {"params": {"temperature": 0.7}},
        {"protocol": "p/2"},
        {"messages": [{"role": "user", "content": "y"}]},
    ]:
        assert cache_key(**{**base, **change}) != key, change
    # Timeouts, attempts, prices and limits are not part of the key: the same call is found.
    with ReviewServer() as server:
        a = spec(server)
        b = spec(server, timeout=9, max_attempts=1, concurrency=1, requests_per_minute=5, price={"input": 9})

        async def keys():
            out = []
            for s in (a, b):
                reviewer = build_reviewer(s)
                out.append(reviewer.client.key([{"role": "user", "content": "x"}], namespace="p"))
                await reviewer.aclose()
            return out

        key_a, key_b = asyncio.run(keys())
    assert key_a == key_b


# --- Anthropic through its SDK ----------------------------------------------------------------


def test_anthropic_backend_reviews_and_retries(monkeypatch):
    monkeypatch.setenv("DCA_TEST_KEY", SECRET)
    with ReviewServer(first_attempt("server_error")) as server:
        (review,), stats = run([spec(server, backend="anthropic", api_key_env="DCA_TEST_KEY")], ITEMS[:1])
        first, second = server.requests
    assert first["path"] == "/v1/messages"
    assert SECRET in (first["headers"].get("x-api-key"), first["headers"].get("authorization", "").removeprefix("Bearer "))
    body = second["body"]
    assert body["system"].startswith("You review") and [m["role"] for m in body["messages"]] == ["user"]
    assert review.status == "ok" and review.steps
    assert review.usage["output_tokens"] > 0
    assert review.usage["cost_usd"] == pytest.approx((review.usage["input_tokens"] * 1 + review.usage["output_tokens"] * 2) / 1e6)


def test_a_missing_key_for_a_cloud_endpoint_is_a_user_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runner = ReviewRunner([ReviewerSpec(name="gpt", backend="openai", model="gpt-x")])
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        runner.prepare()


# --- dca review ------------------------------------------------------------------------------


def write_inputs(tmp_path, server, **llm_overrides):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    llm = {
        "name": "llm", "backend": "openai", "model": "test-model", "base_url": server.url + "/v1",
        "api_key_env": "DCA_TEST_KEY", "timeout": 1.0, "max_attempts": 3, "backoff_base": 0.01,
        "backoff_max": 1.0, "concurrency": 16, "price": {"input": 0.5, "output": 1.5}, **llm_overrides,
    }  # fmt: skip
    (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": [{"name": "oracle", "backend": "oracle"}, llm]}))


def review_command(tmp_path, *extra):
    return dca_main([
        "review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", str(tmp_path / "reviewers.yaml"),
        "--out", str(tmp_path / "reviews.jsonl"), "--cache", str(tmp_path / "cache.sqlite"),
        "--summary-json", str(tmp_path / "summary.json"), "--overwrite", *extra,
    ])  # fmt: skip


def expected_failure(request: dict) -> str | None:
    fault = fault_of(request)
    if fault is None or not persistent(request):
        return None
    return "invalid_answer" if fault in ("invalid_json", "out_of_range") else fault


ANSWERED = ("ok", "invalid_json", "out_of_range")


def test_dca_review_twice_second_run_is_served_from_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCA_TEST_KEY", SECRET)
    with ReviewServer() as server:
        write_inputs(tmp_path, server, timeout=30)
        assert review_command(tmp_path) == 0
        first = json.loads((tmp_path / "summary.json").read_text())
        assert review_command(tmp_path) == 0
        second = json.loads((tmp_path / "summary.json").read_text())
        assert len(server.requests) == 200
    assert first["total"]["new_calls"] == 200 and first["total"]["cached_calls"] == 0
    assert second["total"]["new_calls"] == 0 and second["total"]["cached_calls"] == 200
    assert second["total"]["reviews"] == 400 and second["total"]["failed"] == 0
    assert first["reviewers"]["llm"]["cost_usd"] > 0 and second["reviewers"]["llm"]["cost_usd"] == 0
    out = capsys.readouterr().out
    assert "cached calls" in out and "wrote 400 reviews" in out


def test_dca_review_with_faults_in_30_percent_of_calls(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCA_TEST_KEY", SECRET)
    # The client's timeout is generous enough that only the injected hangs reach it, even on a
    # loaded machine (the server runs in this process and shares its CPU).
    with ReviewServer(fault_plan, hang_seconds=4.0, retry_after="0") as server:
        write_inputs(tmp_path, server, timeout=2.5)
        assert review_command(tmp_path) == 0  # failed reviews do not change the exit code
        first_requests = list(server.requests)
        first = json.loads((tmp_path / "summary.json").read_text())
        assert review_command(tmp_path) == 0
        second_requests = server.requests[len(first_requests):]
        second = json.loads((tmp_path / "summary.json").read_text())
    out = capsys.readouterr()

    reviews = read_jsonl(tmp_path / "reviews.jsonl", Review)
    assert len(reviews) == 400
    assert Counter((r.trace_id, r.reviewer) for r in reviews) == Counter({(t.id, n): 1 for t in TRACES for n in ("oracle", "llm")})
    assert all(r.steps and r.status == "ok" for r in reviews if r.reviewer == "oracle")

    # What the server injected decides which reviews must fail, and why.
    by_trace = {}
    for request in first_requests:
        by_trace.setdefault(first_user_text(request["body"]), request["body"])
    assert len(by_trace) == 200
    injected = Counter(fault_of(body) for body in by_trace.values())
    assert sum(n for fault, n in injected.items() if fault) / 200 == pytest.approx(0.3, abs=0.08)
    assert set(injected) - {None} == set(FAULTS)
    expected = Counter(expected_failure(body) for body in by_trace.values())
    expected.pop(None, None)
    assert expected  # some faults persist, so some reviews must fail
    llm_reviews = [r for r in reviews if r.reviewer == "llm"]
    assert Counter(r.metadata["failure"] for r in llm_reviews if r.status == "failed") == expected

    for summary in (first, second):  # the summary counts match the records
        llm = summary["reviewers"]["llm"]
        assert llm["failed_by_reason"] == dict(expected) and llm["failed"] == sum(expected.values())
        assert llm["ok"] + llm["failed"] == llm["reviews"] == 200
    assert first["reviewers"]["llm"]["new_calls"] == sum(r["action"] in ANSWERED for r in first_requests)
    assert first["reviewers"]["llm"]["requests"] == len(first_requests)
    # The re-run pays for nothing answered validly; it retries calls that never got an answer and
    # asks again each call whose answer did not parse (a failure is never cached as an answer).
    transport = sum(n for kind, n in expected.items() if kind != "invalid_answer")
    invalid = sum(r["action"] in ("invalid_json", "out_of_range") for r in first_requests)
    assert invalid and second["reviewers"]["llm"]["new_calls"] == invalid
    assert second["reviewers"]["llm"]["cached_calls"] == first["reviewers"]["llm"]["new_calls"] - invalid
    assert len(second_requests) == 3 * transport + invalid
    assert not any(r["action"] == "ok" for r in second_requests)  # every valid answer came from the cache
    assert second["reviewers"]["llm"]["requests"] == len(second_requests)
    assert "wrote 400 reviews" in out.out and SECRET not in out.out + out.err
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_run_killed_with_sigkill_resumes_without_repeating_answered_calls(tmp_path, monkeypatch):
    answered_first = 20

    def plan(request, attempt):
        with_answers = sum(r["action"] == "ok" for r in server.requests)
        return "ok" if with_answers < answered_first else "hold"

    with ReviewServer(plan) as server:
        write_inputs(tmp_path, server, timeout=60, concurrency=4)
        command = [sys.executable, "-m", "dca.cli", "review", "--traces", str(tmp_path / "traces.jsonl"),
                   "--reviewers", str(tmp_path / "reviewers.yaml"), "--out", str(tmp_path / "reviews.jsonl"),
                   "--cache", str(tmp_path / "cache.sqlite")]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "DCA_TEST_KEY": SECRET})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (tmp_path / "cache.sqlite").exists():
                try:
                    rows = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT COUNT(*) FROM calls").fetchone()[0]
                except sqlite3.OperationalError:
                    rows = 0
                if rows >= answered_first:
                    break
            time.sleep(0.1)
        else:
            process.kill()
            pytest.fail("the review run never cached its first answers")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert not (tmp_path / "reviews.jsonl").exists()
        answered = {r["key"] for r in server.requests if r["action"] == "ok"}
        assert len(answered) == answered_first
        n_before = len(server.requests)

        server.plan = always("ok")
        monkeypatch.setenv("DCA_TEST_KEY", SECRET)
        assert review_command(tmp_path) == 0
        resumed = server.requests[n_before:]
    assert not answered & {r["key"] for r in resumed}  # nothing answered before the kill was asked again
    assert len(resumed) == 200 - answered_first
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reviewers"]["llm"]["cached_calls"] == answered_first
    assert len(read_jsonl(tmp_path / "reviews.jsonl", Review)) == 400


def test_dca_review_bad_input_is_one_line_exit_2(tmp_path):
    with ReviewServer() as server:
        write_inputs(tmp_path, server)
    (tmp_path / "bad.yaml").write_text("reviewers:\n  - {name: x, backend: openai}")
    cases = [
        (["--traces", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["--reviewers", str(tmp_path / "bad.yaml")], "needs a model"),
        (["--reviewer", "nobody"], "no reviewer 'nobody'"),
        (["--problems", str(tmp_path / "traces.jsonl")], "not a valid Problem record"),
        (["--out", str(tmp_path / "no" / "dir" / "r.jsonl")], "does not exist"),
        (["--limit", "0"], "--limit"),
    ]
    for override, message in cases:
        args = {"--traces": str(tmp_path / "traces.jsonl"), "--reviewers": str(tmp_path / "reviewers.yaml"), "--out": str(tmp_path / "r.jsonl")}
        extra = []
        for flag, value in zip(override[::2], override[1::2]):
            if flag in args:
                args[flag] = value
            else:
                extra += [flag, value]
        one_line_error(dca_in_process("review", *[x for kv in args.items() for x in kv], *extra, "--no-cache"), message)


# --- the synchronous form (the trainer's) -------------------------------------------------------


def test_an_llm_reviewer_reviews_synchronously_with_cache_and_failures(tmp_path):
    item = ITEMS[0]
    with ReviewServer(lambda request, attempt: "server_error" if "Answer: 0" in first_user_text(request) else "ok") as server:
        reviewer = build_reviewer(spec(server, max_attempts=2), BuildContext(cache=ReviewCache(tmp_path / "c.sqlite")))
        assert isinstance(reviewer, LLMReviewer)
        try:
            review = reviewer.review(item.problem, item.trace.completion, item.units, trace_id="t1")
            again = reviewer.review(item.problem, item.trace.completion, item.units, trace_id="t1")
            failed = reviewer.review(item.problem, "1 + 1 = 2.\nAnswer: 0", segment("1 + 1 = 2.\nAnswer: 0"), trace_id="t2")
        finally:
            reviewer.close()
        assert len(server.requests) == 1 + 2
    assert review.status == "ok" and review.reviewer == "llm" and review.steps == again.steps
    assert again.usage["cached_calls"] == 1
    assert "Outcome: solved" in server.requests[0]["body"]["messages"][1]["content"]  # outcome recomputed
    assert failed.status == "failed" and failed.metadata["failure"] == "server_error" and failed.usage["requests"] == 2
    assert reviewer.stats.calls == 3 and reviewer.stats.failed == 1 and reviewer.stats.cached == 1


def test_a_key_in_the_base_url_reaches_the_server_but_no_file(tmp_path):
    cache_path = tmp_path / "cache.sqlite"
    with ReviewServer() as server:
        host = server.url.split("://", 1)[1]
        keyed = spec(server, base_url=f"http://user:{SECRET}@{host}/v1")
        plain = spec(server)
        reviews, stats = run([keyed], ITEMS[:3], ReviewCache(cache_path))
        assert all(r.status == "ok" for r in reviews) and stats["llm"].answered_calls == 3
        again, stats2 = run([plain], ITEMS[:3], ReviewCache(cache_path))  # same endpoint, same key
        assert stats2["llm"].cached_calls == 3
    write_jsonl(tmp_path / "reviews.jsonl", reviews)
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path


def test_empty_and_too_long_traces_are_failed_reviews_at_no_cost():
    from dca.records import Trace

    long_trace = Trace(id="long", problem_id=ITEMS[0].trace.problem_id, prompt="", completion="3 + 4 = 7. " * 3000, outcome="correct")
    empty = Trace(id="empty", problem_id=ITEMS[0].trace.problem_id, prompt="", completion="", outcome="format_failure")
    items = [ReviewItem(problem=ITEMS[0].problem, trace=t, units=segment(t.completion)) for t in (long_trace, empty)]
    with ReviewServer() as server:
        reviews, stats = run([spec(server, max_prompt_tokens=2000)], items)
        assert server.requests == []
    assert [r.status for r in reviews] == ["failed", "failed"]
    assert reviews[0].error.startswith("trace_too_long: trace too long: the prompt is about")
    assert reviews[1].error == "empty_trace: empty trace: no units to review"
    assert all(r.usage["cost_usd"] == 0 for r in reviews) and stats["llm"].answered_calls == 0


def test_an_answer_leaving_units_uncovered_is_a_failed_review():
    with ReviewServer(always("partial")) as server:
        (review,), _ = run([spec(server, repair_attempts=1)], ITEMS[:1])
        assert len(server.requests) == 2  # the answer and one repair turn
    assert review.status == "failed" and review.error.startswith("uncovered_units: ")
    assert "uncovered units 1-" in review.error
