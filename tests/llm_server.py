"""A scripted OpenAI-compatible chat server on localhost, for the judge and `dca generate`
tests: real sockets and the real SDK client; only the model's answers are scripted.

``answer(request) -> str | int``: the assistant text for a parsed request body, or an HTTP
status code to fail with (e.g. 400, a non-retryable error).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def user_text(request: dict) -> str:
    return "\n".join(m["content"] for m in request.get("messages", []) if m.get("role") == "user")


class ScriptedServer:
    def __init__(self, answer: Callable[[dict], str | int]):
        self.answer = answer
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server.lock:
                    server.requests.append(body)
                result = server.answer(body)
                if isinstance(result, int):
                    payload, status = {"error": {"message": f"scripted {result}", "type": "invalid_request_error"}}, result
                else:
                    status = 200
                    payload = {
                        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": result}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                    }  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reviewers_yaml(path, url: str, name: str = "model", **extra) -> str:
    """A reviewers file declaring one OpenAI-compatible model at `url` (key from DCA_TEST_KEY)."""
    import yaml

    entry = {"name": name, "backend": "openai", "model": "scripted", "base_url": url, "api_key_env": "DCA_TEST_KEY",
             "max_attempts": 1, "timeout": 20, "price": {"input": 1.0, "output": 2.0}, **extra}  # fmt: skip
    path.write_text(yaml.safe_dump({"reviewers": [entry]}))
    return str(path)
