"""A SQLite (WAL) cache of reviewer calls, so an interrupted or repeated run pays once.

The key is a SHA-256 over exactly what changes a reviewer's answer: the backend kind, the
endpoint (``base_url``), the model, the generation parameters, the protocol version and the
request messages. Timeouts, retry counts, rate limits, prices and API keys are not in the
key (they do not change the answer) and API keys are never stored: the cache holds only the
request body and the generated text with its token usage.

Each answered call is committed on its own, in WAL mode, so a run killed with ``kill -9``
keeps every answer it had received; the resumed run finds them and calls again only what was
never answered. Failures are not cached as answers: failed calls (timeouts, 5xx) are never
stored, and an answer the caller could not parse (an invalid review) is not stored either
(`dca.llm.LLMClient.generate`'s ``accept``), so a re-run asks the reviewer again. Every stored
text has been redacted (`dca.redact`): a credential a server echoed never reaches the file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..redact import redact_url

__all__ = ["ReviewCache", "cache_key"]


def cache_key(*, backend: str, base_url: str | None, model: str, params: dict[str, Any], protocol: str, messages: list[dict]) -> str:
    """A stable hash of what determines a reviewer's answer (see the module docstring)."""
    payload = {
        "backend": backend,
        "base_url": (redact_url(base_url) or "").rstrip("/"),  # never a key carried in the URL
        "model": model,
        "params": params,
        "protocol": protocol,
        "messages": messages,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ReviewCache:
    """``get(key)`` / ``put(key, request, response)`` over one SQLite file (thread-safe)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls ("
            " key TEXT PRIMARY KEY, request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, request, response, created) VALUES (?, ?, ?, ?)",
                (key, json.dumps(request, ensure_ascii=False), json.dumps(response, ensure_ascii=False), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
