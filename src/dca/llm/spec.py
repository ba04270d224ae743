"""What the LLM transport is made of: a model's settings (`LLMSpec`, `Price`), what a backend
implements (`LLMBackend`: ``generate`` and ``classify``), what it returns (`Generation`,
`CallError`), how a call fails for good (`LLMCallFailed`) and the client's counters (`CallStats`).
The client (`dca.llm.client`) and the backends (`dca.llm.backends`, `dca.llm.hf`) build on these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

#: Providers an `LLMSpec` can name; each is built by `dca.llm.backends.make_backend`.
LLM_BACKENDS = ("openai", "anthropic", "hf")

_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


# ---------------------------------------------------------------------------------------------
# Settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


class LLMSpec(_Strict):
    """Which model to call and how (`dca.review.config.ReviewerSpec` extends it)."""

    backend: str = Field(description="openai, anthropic or hf.")
    model: str = Field("", description="Model id.")
    base_url: str | None = Field(None, description="Endpoint of an OpenAI-compatible or Anthropic API.")
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    params: dict[str, Any] = Field(default_factory=dict, description="Generation parameters passed to the backend.")
    price: Price = Price()
    structured_output: bool = Field(True, description="Ask an OpenAI-compatible endpoint for JSON-schema output when a caller gives a schema.")
    concurrency: int = Field(4, ge=1, le=512, description="Requests in flight at once.")
    requests_per_minute: float | None = Field(None, gt=0)
    timeout: float = Field(120.0, gt=0, le=3600, description="Seconds per request.")
    max_attempts: int = Field(4, ge=1, le=20, description="Tries per call for retryable errors.")
    backoff_base: float = Field(1.0, ge=0, le=60, description="First retry waits about this many seconds, doubling after.")
    backoff_max: float = Field(60.0, ge=0, le=600, description="Longest wait between tries (Retry-After is capped here too).")

    def default_key_env(self) -> None:
        if self.api_key_env is None and self.backend in _DEFAULT_KEY_ENV:
            self.api_key_env = _DEFAULT_KEY_ENV[self.backend]

    def who(self) -> str:
        """How messages name this model: the reviewer's name where it has one."""
        name = getattr(self, "name", None)
        return f"reviewer '{name}'" if name else f"the {self.backend} model {self.model!r}"

    def caller_params(self) -> tuple[str, ...]:
        """Names in ``params`` that the caller reads and the backend does not take (none here;
        a reviewer's grammar bounds, `dca.review.config.ReviewerSpec`)."""
        return ()

    def backend_params(self) -> dict[str, Any]:
        """``params`` without `caller_params`: what the backend generates with."""
        caller = self.caller_params()
        return {k: v for k, v in self.params.items() if k not in caller}


# ---------------------------------------------------------------------------------------------
# What a backend implements


@dataclass(frozen=True)
class Grammar:
    """A decoding constraint a caller gives with a request (`LLMClient.generate`).

    ``kind`` ``ebnf``: ``text`` is an xgrammar EBNF grammar (start rule ``root``); ``json_schema``:
    ``text`` is a JSON schema, and the answer is compact JSON valid for it (no whitespace between
    tokens, no properties the schema does not name). A backend that decodes locally (``hf``)
    masks every token the grammar does not allow; remote backends ignore it.
    """

    kind: Literal["ebnf", "json_schema"]
    text: str

    def __post_init__(self) -> None:
        if self.kind not in ("ebnf", "json_schema"):
            raise ValueError(f"grammar kind must be 'ebnf' or 'json_schema', not {self.kind!r}")


@dataclass
class Generation:
    """One answered call. The client fills the last four fields."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    cost: float = 0.0
    """USD for this call (0 when served from the cache)."""
    cached: bool = False
    cached_input_tokens: int = 0
    """Input tokens the provider served from its prompt cache, where its usage reports them
    (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``)."""
    requests: int = 0
    """Requests made for it, retries included (0 when cached)."""
    retries: int = 0

    def cache_record(self) -> dict[str, Any]:
        return {"text": self.text, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "model": self.model}


@dataclass
class CallError:
    """A failed request, classified by its backend."""

    kind: Literal["timeout", "rate_limited", "server_error", "connection_error", "client_error", "backend_error"] | str
    retryable: bool
    message: str
    retry_after: float | None = None
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``)."""


class LLMBackend(Protocol):
    """A provider: one answer per request, and whether an error is worth retrying.

    A backend that honours `Grammar` may name its grammar engine and version in an attribute
    ``grammar_engine`` (part of the cache key of a call with a grammar)."""

    def cache_params(self) -> dict[str, Any]:
        """The generation parameters that change the answer (part of the cache key)."""
        ...

    async def generate(
        self, messages: list[dict[str, str]], *, json_schema: dict | None = None, grammar: Grammar | None = None
    ) -> Generation: ...

    def classify(self, error: BaseException) -> CallError: ...

    async def aclose(self) -> None: ...


class LLMCallFailed(Exception):
    """A call that failed for good; ``kind`` as in `CallError`, ``requests`` made."""

    def __init__(self, error: CallError, requests: int, retries: int):
        super().__init__(f"{error.message} (after {requests} attempt{'s' if requests != 1 else ''})")
        self.kind = error.kind
        self.requests = requests
        self.retries = retries


@dataclass
class CallStats:
    """A client's totals."""

    calls: int = 0
    """`generate` calls (cached ones included)."""
    requests: int = 0
    """Requests started, retries included."""
    answered: int = 0
    """Calls the backend answered (new, paid calls)."""
    cached: int = 0
    retries: int = 0
    failed: int = 0
    failed_by_kind: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls, "requests": self.requests, "answered_calls": self.answered, "cached_calls": self.cached,
            "retries": self.retries, "failed_calls": self.failed, "failed_by_kind": dict(sorted(self.failed_by_kind.items())),
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": round(self.cost, 6),
        }  # fmt: skip
