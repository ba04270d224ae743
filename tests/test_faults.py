"""Hostile environments (docs/hostile-environments.md): a full filesystem, credentials in odd
places of a ``base_url`` echoed back by the server, a cache holding a failure, a second writer.

A full filesystem is a real tmpfs of a few hundred KiB mounted for the test (root only; the
tests skip with the reason otherwise). Secrets are planted in the environment (API key), in the
URL's user-info and in its query string; the local server (tests/review_servers.py) echoes what
it was sent, in plain, URL-encoded and base64 forms, in error bodies, answers and model names,
and no form of any of them may appear in a file that `dca review`, `dca train` or the cache wrote.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml

from dca.cli import main as dca_main
from dca.durable import ENVIRONMENT_EXIT_CODE, rewrite_in_place
from dca.files import read_state, write_run_state, write_text_atomic
from dca.llm import LLMClient
from dca.records import Review
from dca.files import read_jsonl, write_jsonl
from dca.review import ReviewCache
from dca.review.config import ReviewerSpec
from dca.train.resume import truncate_run_files
from lock_holder import held_locks
from review_servers import ReviewServer, is_repair, make_traces

PROBLEMS, TRACES = make_traces(40, seed=3)


def dca(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dca.cli", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def one_line(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("reviewing ")]  # its progress bar
    assert len(lines) == 1 and lines[0].startswith("dca: error:") and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# A full filesystem


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a full filesystem is a tmpfs mount, which needs root")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _fill(path: Path) -> None:
    """Write to `path` until the filesystem refuses another byte."""
    with open(path / "filler", "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.fixture
def small_fs(tmp_path):
    """A mounted tmpfs of 512 KiB (unmounted after the test); `_fill` makes it full."""
    mount = tmp_path / "small"
    _mount_tmpfs(mount, "512k")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_fs(small_fs):
    _fill(small_fs)
    return small_fs


def _left_on(fs: Path) -> list[str]:
    return sorted(p.name for p in fs.iterdir() if p.name != "filler")


def test_problems_on_a_full_disk_is_one_line_exit_3_and_writes_nothing(full_fs):
    out = full_fs / "problems.jsonl"
    line = one_line(dca("problems", "--synthetic", "200", "--out", str(out)), ENVIRONMENT_EXIT_CODE, str(out), "No space left on device")
    assert "free space" in line
    assert _left_on(full_fs) == []  # no file, no .partial


def test_review_summary_on_a_full_disk_is_one_line_and_the_reviews_are_whole(tmp_path, full_fs):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": [{"name": "oracle", "backend": "oracle"}]}))
    common = ["review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", str(tmp_path / "reviewers.yaml"), "--no-cache"]
    summary = full_fs / "summary.json"
    result = dca(*common, "--out", str(tmp_path / "reviews.jsonl"), "--summary-json", str(summary))
    one_line(result, ENVIRONMENT_EXIT_CODE, str(summary), "No space left on device")
    assert len(read_jsonl(tmp_path / "reviews.jsonl", Review)) == len(TRACES)  # written whole before the summary
    assert _left_on(full_fs) == []
    result = dca(*common, "--out", str(full_fs / "reviews.jsonl"))
    one_line(result, ENVIRONMENT_EXIT_CODE, str(full_fs / "reviews.jsonl"))
    assert _left_on(full_fs) == []


def test_run_state_records_failed_in_place_on_a_full_disk(small_fs):
    state = small_fs / "run.json"
    write_run_state(state, {"status": "running", "pid": 1})
    _fill(small_fs)
    with pytest.raises(Exception) as caught:  # an ordinary write has no room left
        write_text_atomic(small_fs / "other.json", "{}")
    assert "No space left on device" in str(caught.value)
    write_run_state(state, {"status": "failed", "error": "OSError: [Errno 28] No space left on device " + "x" * 20000})
    written = json.loads(state.read_text())
    assert written["status"] == "failed" and written["error"].startswith("OSError: [Errno 28]")
    assert _left_on(small_fs) == ["run.json"]


def test_rewrite_in_place_never_grows_a_file(tmp_path):
    path = tmp_path / "state"
    path.write_bytes(b"")
    assert not rewrite_in_place(path, b"x" * 10)  # an empty file owns no block
    assert path.read_bytes() == b""


def test_train_on_a_full_disk_ends_in_one_line_and_run_json_says_failed(tmp_path, tiny_model_dir):
    """The run starts, then its checkpoint does not fit: exit 3, one line, run.json ``failed``
    with the cause (the tiny model's weights are larger than the filesystem)."""
    run = tmp_path / "fs"
    _mount_tmpfs(run, "600k")
    try:
        config = {
            "model": str(tiny_model_dir), "credit": {"policy": "conserve"}, "problems": {"synthetic": {"count": 4, "seed": 1}},
            "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 8, "learning_rate": 1e-4},
        }  # fmt: skip
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
        result = dca("train", "--config", str(tmp_path / "run.yaml"), "--out", str(run / "run"), env={"DCA_CACHE_DIR": str(tmp_path / "cache")})
        one_line(result, ENVIRONMENT_EXIT_CODE, str(run / "run"), "No space left on device", "--resume")
        state = json.loads((run / "run" / "run.json").read_text())
        assert state["status"] == "failed" and "No space left on device" in state["error"], state
        assert not (run / "run" / "summary.json").exists()
        assert read_state(run / "run" / "run.json")["status"] == "failed"
    finally:
        subprocess.run(["umount", "-l", str(run)], check=False)


# ---------------------------------------------------------------------------------------------
# Run state that tells the truth


def test_a_dead_writers_running_reads_as_interrupted(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running", "pid": 999999}))
    assert read_state(run / "run.json")["status"] == "interrupted"  # no live process holds the lock
    with held_locks(run):
        assert read_state(run / "run.json")["status"] == "running"
    (run / "run.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    assert read_state(run / "run.json")["status"] == "failed"
    assert read_state(tmp_path / "missing.json") == {}


def test_a_torn_last_line_counts_as_dropped_on_resume(tmp_path):
    traces = [{"id": f"t{i}", "step": i} for i in range(3)]
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces) + '{"id": "t3", "st')
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps({"trace_id": t["id"]}) + "\n" for t in traces) + '{"trace_')
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"st')
    dropped = truncate_run_files(tmp_path, 2)
    assert dropped == {"traces.jsonl": 2, "reviews.jsonl": 2, "metrics.jsonl": 1}
    assert [json.loads(line)["id"] for line in (tmp_path / "traces.jsonl").read_text().splitlines()] == ["t0", "t1"]


def test_records_and_state_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    import dca.durable

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(dca.durable.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(dca.durable.os, "replace", lambda a, b: (events.append(f"replace {Path(b).name}"), real_replace(a, b))[1])
    write_jsonl(tmp_path / "r.jsonl", PROBLEMS[:2])
    write_text_atomic(tmp_path / "t.txt", "x")
    write_run_state(tmp_path / "run.json", {"status": "running"})
    for name in ("r.jsonl", "t.txt", "run.json"):
        i = events.index(f"replace {name}")
        assert i > 0 and events[i - 1] == "fsync", events


def test_a_second_writer_is_refused_before_reading_its_config(tmp_path):
    """Not timed here (benchmarks/refusal_latency.py measures it): the refusal names the holder
    even when the config would fail, so the lock is checked first."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("not: [a, valid, config\n")
    with held_locks(run) as holder:
        for args in (["train", "--resume", "--out", str(run)], ["train", "--config", str(run / "config.yaml"), "--out", str(run), "--overwrite"],
                     ["sft", "--edits", "none.jsonl", "--model", "embedded", "--out", str(run)]):  # fmt: skip
            one_line(dca(*args), 2, "being written by another process", str(holder.pid))


# ---------------------------------------------------------------------------------------------
# Secrets echoed back

KEY = "sk-live-KEY+planted/DO-NOT-LEAK=1"
USER, PASSWORD = "gateway-user", "pass:word+planted/9"
QUERY_KEY = "q+planted/query=KEY"


def _forms(value: str) -> set[str]:
    """The spellings of a secret that must not appear in any file."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    forms |= {base64.b64encode(value.encode()).decode(), base64.urlsafe_b64encode(value.encode()).decode()}
    return forms


FORBIDDEN = _forms(KEY) | _forms(PASSWORD) | _forms(f"{USER}:{PASSWORD}") | _forms(QUERY_KEY)


def _secret_url(server: ReviewServer) -> str:
    return f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}/v1?api_key={quote(QUERY_KEY, safe='')}&tenant=dca"


def _assert_no_secret_in(*paths: Path) -> int:
    """No form of any planted secret in any file under `paths`; returns how many files were read."""
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    for file in files:
        data = file.read_bytes()
        for form in FORBIDDEN:
            assert form.encode() not in data, (file, form)
    return len(files)


def _check_credentials_sent(server: ReviewServer) -> None:
    """The key went as the Bearer token, the user-info as Proxy-Authorization, the query through
    the SDK's query option (to the right path, intact)."""
    from urllib.parse import parse_qs, urlsplit

    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert server.requests
    for request in server.requests:
        url = urlsplit(request["path"])
        assert url.path == "/v1/chat/completions", request["path"]
        assert parse_qs(url.query) == {"api_key": [QUERY_KEY], "tenant": ["dca"]}
        assert request["headers"]["authorization"] == f"Bearer {KEY}"
        assert request["headers"]["proxy-authorization"] == basic


def _review_inputs(tmp_path: Path, server: ReviewServer) -> list[str]:
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "traces.jsonl", TRACES)
    llm = {"name": "llm", "backend": "openai", "model": "echo", "base_url": _secret_url(server), "api_key_env": "DCA_FAULT_KEY",
           "timeout": 20, "max_attempts": 1, "repair_attempts": 0}  # fmt: skip
    (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": [llm]}))
    return [
        "review", "--traces", str(tmp_path / "traces.jsonl"), "--reviewers", str(tmp_path / "reviewers.yaml"),
        "--out", str(tmp_path / "out" / "reviews.jsonl"), "--summary-json", str(tmp_path / "out" / "summary.json"),
        "--cache", str(tmp_path / "out" / "cache.sqlite"), "--overwrite",
    ]  # fmt: skip


@pytest.mark.parametrize("action", ["echo_ok", "echo_unauthorized"])
def test_no_form_of_a_secret_reaches_reviews_summary_cache_or_logs(tmp_path, monkeypatch, caplog, action):
    monkeypatch.setenv("DCA_FAULT_KEY", KEY)
    caplog.set_level(logging.DEBUG)  # httpx logs each request's URL, query and all; the SDK its options
    with ReviewServer(lambda request, attempt: action) as server:
        args = _review_inputs(tmp_path, server)
        (tmp_path / "out").mkdir()
        assert dca_main(args) == 0
        _check_credentials_sent(server)
    reviews = read_jsonl(tmp_path / "out" / "reviews.jsonl", Review)
    assert len(reviews) == len(TRACES)
    if action == "echo_ok":  # the echo reached the answers, masked
        assert all(r.status == "ok" for r in reviews)
        reasons = " ".join(s.reason for r in reviews for s in r.steps)
        for what in ("authorization Bearer ***", "proxy-authorization Basic ***", "proxy-authorization pair ***", "api_key=***", "query b64 ***"):
            assert what in reasons, (what, reasons[:2000])
        assert len(ReviewCache(tmp_path / "out" / "cache.sqlite")) > 0
    else:  # the echo reached the errors, masked
        assert all(r.status == "failed" and r.metadata["failure"] == "client_error" for r in reviews)
        assert "Bearer ***" in reviews[0].error and "api_key=***" in reviews[0].error, reviews[0].error
    assert "api_key=" in caplog.text  # the request lines were logged ...
    for form in FORBIDDEN:  # ... redacted
        assert form not in caplog.text, form
    assert _assert_no_secret_in(tmp_path / "out") >= 3


def test_user_info_alone_is_the_authorization(tmp_path, monkeypatch):
    """Without an API key the URL's user-info is an ordinary Basic login, as HTTP has it."""
    monkeypatch.delenv("DCA_NO_SUCH_KEY", raising=False)
    with ReviewServer(lambda request, attempt: "ok") as server:
        spec = ReviewerSpec(name="llm", backend="openai", model="m", base_url=_secret_url(server), api_key_env="DCA_NO_SUCH_KEY", max_attempts=1)
        client = LLMClient.from_spec(spec)
        try:
            client.generate_sync([{"role": "user", "content": "Units:\n0: a\n1: b"}], namespace="t")
        finally:
            client.close()
        (request,) = server.requests
    assert request["headers"]["authorization"] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert "proxy-authorization" not in request["headers"]


def test_train_with_an_echoing_reviewer_writes_no_secret(tmp_path, tiny_model_dir):
    with ReviewServer(lambda request, attempt: "echo_ok") as server:
        llm = {"name": "echo", "backend": "openai", "model": "echo", "base_url": _secret_url(server), "api_key_env": "DCA_FAULT_KEY",
               "timeout": 60, "max_attempts": 1}  # fmt: skip
        (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": [llm]}))
        config = {
            "model": str(tiny_model_dir), "credit": {"policy": "conserve"}, "problems": {"synthetic": {"count": 4, "seed": 1}},
            "grpo": {"steps": 1, "num_generations": 2, "max_completion_length": 16, "learning_rate": 1e-4},
            "reviewer": "echo", "reviewers_file": str(tmp_path / "reviewers.yaml"),
        }  # fmt: skip
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
        result = dca("train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run"),
                     env={"DCA_FAULT_KEY": KEY, "DCA_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        _check_credentials_sent(server)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"
    assert (tmp_path / "run" / "reviews.jsonl").read_text().strip()
    for form in FORBIDDEN:
        assert form not in result.stdout + result.stderr, form
    assert _assert_no_secret_in(tmp_path / "run", tmp_path / "cache") > 5


# ---------------------------------------------------------------------------------------------
# A cached failure heals


def test_a_rerun_after_an_invalid_answer_asks_the_reviewer_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DCA_FAULT_KEY", "sk-unused")
    with ReviewServer(lambda request, attempt: "invalid_json" if attempt == 0 else "ok") as server:
        args = _review_inputs(tmp_path, server)
        (tmp_path / "out").mkdir()
        base = f"http://127.0.0.1:{server.port}/v1"
        (tmp_path / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": [
            {"name": "llm", "backend": "openai", "model": "m", "base_url": base, "api_key_env": "DCA_FAULT_KEY", "max_attempts": 1, "repair_attempts": 0}]}))  # fmt: skip
        assert dca_main(args) == 0
        first = len(server.requests)
        assert all(r.status == "failed" for r in read_jsonl(tmp_path / "out" / "reviews.jsonl", Review))
        assert len(ReviewCache(tmp_path / "out" / "cache.sqlite")) == 0  # no failure stored as an answer
        assert dca_main(args) == 0  # the reviewer is asked again, answers validly this time
        assert len(server.requests) == 2 * first
        assert all(r.status == "ok" for r in read_jsonl(tmp_path / "out" / "reviews.jsonl", Review))
        assert dca_main(args) == 0  # and now the cache serves every answer
        assert len(server.requests) == 2 * first


def test_a_poisoned_cache_entry_is_asked_again_and_replaced(tmp_path):
    messages = [{"role": "user", "content": "question"}]
    with ReviewServer(lambda request, attempt: "ok") as server:
        spec = ReviewerSpec(name="llm", backend="openai", model="m", base_url=f"http://127.0.0.1:{server.port}/v1", max_attempts=1)
        cache = ReviewCache(tmp_path / "cache.sqlite")
        client = LLMClient.from_spec(spec, cache=cache)
        try:
            key = client.key(messages, namespace="t")
            cache.put(key, {}, {"text": "garbage", "input_tokens": 1, "output_tokens": 1, "model": "m"})  # an older cache's failure
            usable = lambda text: text != "garbage"  # noqa: E731
            fresh = client.generate_sync(messages, namespace="t", accept=usable)
            assert not fresh.cached and len(server.requests) == 1
            again = client.generate_sync(messages, namespace="t", accept=usable)
            assert again.cached and again.text == fresh.text and len(server.requests) == 1
        finally:
            client.close()
            cache.close()
    assert not any(is_repair(r["body"]) for r in server.requests)


@pytest.mark.parametrize("action", ["echo_ok", "echo_unauthorized"])
def test_the_anthropic_backend_masks_an_echo_too(monkeypatch, action):
    from dca.llm import LLMCallFailed

    monkeypatch.setenv("DCA_FAULT_KEY", KEY)
    with ReviewServer(lambda request, attempt: action) as server:
        base = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}?api_key={quote(QUERY_KEY, safe='')}"
        spec = ReviewerSpec(name="llm", backend="anthropic", model="m", base_url=base, api_key_env="DCA_FAULT_KEY", max_attempts=1)
        client = LLMClient.from_spec(spec)
        try:
            text = client.generate_sync([{"role": "user", "content": "Units:\n0: a\n1: b"}], namespace="t").text
        except LLMCallFailed as e:
            text = str(e)
        finally:
            client.close()
        (request,) = server.requests
    assert request["path"].startswith("/v1/messages?api_key=")
    assert request["headers"]["proxy-authorization"] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert KEY in (request["headers"].get("x-api-key"), request["headers"].get("authorization", "").removeprefix("Bearer "))
    assert "***" in text
    for form in FORBIDDEN:
        assert form not in text, (form, text)


def test_an_unparsable_judge_verdict_is_asked_again(tmp_path, monkeypatch):
    from llm_server import ScriptedServer, reviewers_yaml

    from dca.domains.judge import Judge, generate_open_ended
    from dca.review import load_reviewers

    monkeypatch.setenv("DCA_TEST_KEY", "sk-unused")
    answers = iter(["not a verdict", json.dumps({"score": 8, "reason": "meets the rubric"})])
    (task,) = generate_open_ended(1, 0)
    with ScriptedServer(lambda request: next(answers)) as server:
        (spec,) = load_reviewers(reviewers_yaml(tmp_path / "judge.yaml", server.url, name="judge"), only=["judge"])
        for expected in ("invalid_answer", 8):  # a fresh judge each time: only the cache is shared
            judge = Judge(spec, cache=ReviewCache(tmp_path / "cache.sqlite"))
            verdict = judge._ask(task, "Answer: a response")
            judge.close()
            assert getattr(verdict, "score", getattr(verdict, "reason", None)) == expected, verdict
        assert len(server.requests) == 2
