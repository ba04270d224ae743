"""Local HTTP servers for reviewer tests: an OpenAI- and Anthropic-compatible endpoint that
answers with valid reviews or with the faults a live server cannot produce on demand (429
with Retry-After, 500, a hang past the client's timeout, a dropped connection, invalid JSON,
out-of-range units). Real sockets, real SDK clients: only the model behind it is scripted.

A server's `plan(request, attempt)` says what to do with a request: ``request`` is the
parsed JSON body, ``attempt`` counts earlier requests with the same messages (0 first).

Two actions echo back what the server was sent (its credentials in several forms, `echo_of`),
as a hostile or careless server might: ``echo_ok`` (a valid review whose reasons and model name
carry the echo) and ``echo_unauthorized`` (a 401 whose error message is the echo).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

FAULTS = ("timeout", "rate_limited", "server_error", "connection_error", "invalid_json", "out_of_range")

Plan = Callable[[dict, int], str]


def messages_of(request: dict) -> list[dict]:
    messages = list(request.get("messages", []))
    if request.get("system"):
        messages.insert(0, {"role": "system", "content": request["system"]})
    return messages


def first_user_text(request: dict) -> str:
    return next(m["content"] for m in messages_of(request) if m["role"] == "user")


def is_repair(request: dict) -> bool:
    return any(m["role"] == "assistant" for m in messages_of(request))


def unit_count(request: dict) -> int:
    from dca.review.protocol import prompt_unit_count

    return prompt_unit_count(messages_of(request)) or 1


def wants_json(request: dict) -> bool:
    return "response_format" in request or any("Answer with JSON only" in str(m["content"]) for m in messages_of(request))


def valid_answer(n: int, *, as_json: bool = False) -> str:
    """A valid review of n units: pairs of units, the last step solves, each uses the one before."""
    steps = []
    for first in range(0, n, 2):
        last = min(first + 1, n - 1)
        position = len(steps)
        steps.append(
            {
                "units": [first, last],
                "function": "computation",
                "contribution": "solved" if last == n - 1 else "essential",
                "depends_on": [position - 1] if position else [],
                "reason": "computes a value",
            }
        )
    return render_answer(steps, as_json=as_json)


def render_answer(steps: list[dict], *, as_json: bool = False) -> str:
    """Review steps as the protocol's JSON or line format."""
    if as_json:
        return json.dumps({"steps": steps})
    return "\n".join(
        f"{s['units'][0]}-{s['units'][1]} {s['function']} {s['contribution']}"
        + (f" <{s['depends_on'][0]}>" if s["depends_on"] else "")
        + f" | {s['reason']}"
        for s in steps
    )


def echo_of(path: str, headers: dict[str, str]) -> list[str]:
    """What a request carried, in the forms a server might echo: the raw auth headers, the raw
    path (its query URL-encoded), each credential decoded, and each in base64."""
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    pieces = [f"path {path}"]
    for name in ("authorization", "proxy-authorization", "x-api-key"):
        value = headers.get(name)
        if not value:
            continue
        scheme, _, token = value.partition(" ")
        pieces.append(f"{name} {value}")
        if scheme.lower() == "basic":
            pieces.append(f"{name} pair {base64.b64decode(token).decode()}")
        else:
            pieces.append(f"{name} b64 {b64(token or value)}")
    for name, value in parse_qsl(urlsplit(path).query):
        pieces += [f"query {name}={value}", f"query b64 {b64(value)}"]
    return pieces


def echo_answer(n: int, echo: list[str], *, as_json: bool = False) -> str:
    """`valid_answer` whose step reasons carry the echo: step i's reason is the whole echo
    starting from piece i (a reason is cut to 300 characters, so each piece leads one)."""
    steps = json.loads(valid_answer(n, as_json=True))["steps"]
    for i, step in enumerate(steps):
        k = i % len(echo)
        step["reason"] = " ; ".join(echo[k:] + echo[:k]).replace("|", "/")
    return render_answer(steps, as_json=as_json)


def fault_of(request: dict, share: float = 0.3) -> str | None:
    """A deterministic fault for a share of traces (by their prompt), else None."""
    digest = int(hashlib.sha256(first_user_text(request).encode()).hexdigest()[:8], 16)
    if digest % 1000 >= share * 1000:
        return None
    return FAULTS[(digest // 1000) % len(FAULTS)]


def persistent(request: dict) -> bool:
    """A fault that never clears (a sixth of faulted traces): its review must fail."""
    digest = int(hashlib.sha256(first_user_text(request).encode()).hexdigest()[8:16], 16)
    return digest % 6 == 0


def fault_plan(request: dict, attempt: int) -> str:
    """30 % of traces meet a fault; transient faults clear on the next try or repair turn."""
    fault = fault_of(request)
    if fault is None:
        return "ok"
    if fault in ("invalid_json", "out_of_range"):
        return fault if (persistent(request) or not is_repair(request)) else "ok"
    return fault if (persistent(request) or attempt == 0) else "ok"


class ReviewServer:
    """A threaded localhost server; use as a context manager. Records every request."""

    def __init__(
        self,
        plan: Plan = lambda request, attempt: "ok",
        *,
        hang_seconds: float = 3.0,
        retry_after: str = "1",
        delay_seconds: float = 0.2,
    ):
        """`delay_seconds`: how long a ``delay`` action waits before answering validly."""
        self.plan = plan
        self.delay_seconds = delay_seconds
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # {"key", "action", "path", "headers", "time"}
        self.attempts: dict[str, int] = {}
        self.prefixes: set[str] = set()  # prompt prefixes seen, for the cached-token figure
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_by_model: dict[str, int] = {}
        self.max_in_flight_by_model: dict[str, int] = {}
        self.release = threading.Event()  # "hold" actions wait for this
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server._handle(self, body)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops connections under concurrent load

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ReviewServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- figures ---------------------------------------------------------------------------

    def actions(self) -> list[str]:
        with self.lock:
            return [r["action"] for r in self.requests]

    def answered_keys(self) -> list[str]:
        with self.lock:
            return [r["key"] for r in self.requests if r["action"] in ("ok", "invalid_json", "out_of_range")]

    # -- handling --------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        key = hashlib.sha256(json.dumps(messages_of(body), sort_keys=True).encode()).hexdigest()
        with self.lock:
            attempt = self.attempts.get(key, 0)
            self.attempts[key] = attempt + 1
            action = self.plan(body, attempt)
            self.requests.append(
                {"key": key, "action": action, "path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()}, "time": time.monotonic(), "body": body}
            )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            model = str(body.get("model", ""))
            self.in_flight_by_model[model] = self.in_flight_by_model.get(model, 0) + 1
            self.max_in_flight_by_model[model] = max(self.max_in_flight_by_model.get(model, 0), self.in_flight_by_model[model])
        try:
            self._respond(handler, body, action)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.lock:
                self.in_flight -= 1
                self.in_flight_by_model[model] -= 1

    def _respond(self, handler, body: dict, action: str) -> None:
        anthropic = urlsplit(handler.path).path.endswith("/messages")
        if action == "delay":
            time.sleep(self.delay_seconds)
            action = "ok"
        if action == "hold":  # answer only when the test releases the server
            self.release.wait()
            action = "ok"
        if action == "timeout":
            time.sleep(self.hang_seconds)
            action = "ok"  # too late: the client has given up
        if action == "connection_error":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == "rate_limited":
            return self._error(handler, 429, "rate_limit_error", {"Retry-After": self.retry_after}, anthropic)
        if action == "server_error":
            return self._error(handler, 500, "api_error", {}, anthropic)
        if action == "unauthorized":
            return self._error(handler, 401, "authentication_error", {}, anthropic)
        echo = echo_of(handler.path, {k.lower(): v for k, v in handler.headers.items()})
        if action == "echo_unauthorized":
            return self._error(handler, 401, "authentication_error", {}, anthropic, message=" ; ".join(echo))
        n = unit_count(body)
        text = {
            "ok": lambda: valid_answer(n, as_json=wants_json(body)),
            "invalid_json": lambda: "Sure! Here is my review: the steps look fine.",
            "out_of_range": lambda: f"0-{n + 5} computation essential | everything",
            "partial": lambda: "0 computation essential | only the first unit",
            "ask": lambda: "QUESTION 0: why do you <b>start</b> here?",  # a dialogue reviewer's question
            "reply": lambda: "Because the question <i>asks</i> for it.",  # a dialogue answerer's reply
            "echo_ok": lambda: echo_answer(n, echo, as_json=wants_json(body)),
        }[action]()
        model = " ; ".join(echo) if action == "echo_ok" else body.get("model", "")
        prompt_tokens = len(json.dumps(messages_of(body))) // 4
        completion_tokens = max(len(text) // 4, 1)
        cached_tokens = self._prompt_cache(body)
        if anthropic:
            payload = {
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens - cached_tokens, "output_tokens": completion_tokens, "cache_read_input_tokens": cached_tokens},
            }
        else:
            payload = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens,
                          "prompt_tokens_details": {"cached_tokens": cached_tokens}},
            }
        self._send(handler, 200, payload, {})

    def _prompt_cache(self, body: dict) -> int:
        """Tokens of the request's prefix (system turn, then the user turn up to its outcome
        line: instructions and problem) that an earlier request already sent, as a provider's
        prompt cache reports them; 0 the first time."""
        messages = messages_of(body)
        user = next((str(m["content"]) for m in messages if m["role"] == "user"), "")
        prefix = json.dumps([m for m in messages if m["role"] == "system"]) + user.split("\nOutcome:")[0]
        with self.lock:
            seen = prefix in self.prefixes
            self.prefixes.add(prefix)
        return len(prefix) // 4 if seen else 0

    def _error(self, handler, status: int, kind: str, headers: dict, anthropic: bool, message: str = "") -> None:
        message = message or f"injected {status}"
        payload = {"type": "error", "error": {"type": kind, "message": message}} if anthropic else {"error": {"message": message, "type": kind}}
        self._send(handler, status, payload, headers)

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


def make_traces(count: int, *, seed: int = 0, irrelevant_rate: float = 0.4):
    """`count` synthetic problems with one trace each: a gold CoT with irrelevant steps mixed in
    (the shape of the demo's traces, without sampling a model)."""
    import random

    from dca.problems import SyntheticConfig, check_answer, generate_problems, render_gold_cot
    from dca.records import Trace

    problems = generate_problems(count, SyntheticConfig(seed=seed, min_operations=1, max_operations=3, distractors=(1, 2)))
    rng = random.Random(seed)
    traces = []
    for i, problem in enumerate(problems):
        text = render_gold_cot(problem, irrelevant_rate=irrelevant_rate, rng=rng).text
        check = check_answer(text, problem.answer)
        traces.append(
            Trace(id=f"{problem.id}/g{i}", problem_id=problem.id, prompt="", completion=text, answer=check.answer, outcome=check.outcome, reward=check.reward)
        )
    return problems, traces
