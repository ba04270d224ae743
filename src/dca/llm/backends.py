"""LLM provider backends: what `dca.llm.LLMClient` drives, one class per provider API.

A backend does two things (the Inspect AI split): ``generate`` one chat answer, and
``classify`` an exception from that call as a `CallError` (what kind, retryable or not,
and the server's ``Retry-After``). Caching, retries, timeouts, rate limits, concurrency and
cost live once, in `dca.llm.LLMClient`, around every backend.

- `OpenAIBackend`: chat completions through the official ``openai`` SDK; any
  OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, llama.cpp server, Ollama, OpenRouter,
  ``transformers serve``). When the caller gives a JSON schema and ``structured_output`` is
  on it asks for JSON-schema structured output; an endpoint that rejects
  ``response_format`` with a 400 is asked again without it, and plain JSON is parsed from then on.
- `AnthropicBackend`: the Messages API through the official ``anthropic`` SDK (the answer
  format is asked for in the prompt; the system prompt goes in ``system``).
- `dca.llm.hf.HFBackend` (``hf``): a local Hugging Face chat model in-process, decoding
  under the grammar its caller gives (xgrammar), or unconstrained without one. A local model
  can also review through ``transformers serve`` (an OpenAI-compatible server; see
  tests/test_review_live.py).

A `dca.llm.Grammar` given with a request is for backends that decode themselves (``hf``);
these two ignore it (the answer format is in the prompt, and ``json_schema`` where supported).

Both SDKs' own retries are switched off (``max_retries=0``): the client owns retries, so a
call is never retried twice over. API keys are read from the environment variable the spec
names, only when the client is built; they are never part of a request record, a cache
entry or an error message: each backend registers its secrets (the key, the URL's password,
key-like query values; `dca.redact`) and `scrub` masks them, in every form, in error text.

A ``base_url`` is taken apart (`dca.redact.split_endpoint`): its query parameters go through the
SDK's ``default_query`` and its user-info becomes an HTTP Basic header, in ``Authorization``
without an API key and in ``Proxy-Authorization`` beside one (so a gateway login and a
provider key work together).
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import os
import re
import time
from typing import Any

from ..errors import UserError
from ..redact import Endpoint, redact, register_secret, split_endpoint
from .hf import HFBackend
from .spec import CallError, Generation, Grammar, LLMBackend, LLMSpec

__all__ = ["AnthropicBackend", "OpenAIBackend", "make_backend", "scrub"]

#: Kept for callers that name the interface by its old name.
Backend = LLMBackend


_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{4,}|sk-ant-[A-Za-z0-9_\-*]{4,})")


def scrub(text: str, secrets: list[str] = ()) -> str:
    """Error text with secrets masked: the given ones and every registered one, in all their
    forms (`dca.redact.redact`), and anything shaped like an API key."""
    for secret in secrets:
        register_secret(secret)
    return _KEY_PATTERN.sub("sk-***", redact(text))


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(float(ms) / 1000, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(when.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


def _classify_sdk_error(sdk: Any, error: BaseException) -> CallError:
    """Shared by the openai and anthropic SDKs, whose exception hierarchies match."""
    message = scrub(f"{type(error).__name__}: {error}")[:500]
    if isinstance(error, (asyncio.TimeoutError, TimeoutError, sdk.APITimeoutError)):
        return CallError("timeout", True, message)
    if isinstance(error, sdk.APIConnectionError):
        return CallError("connection_error", True, message)
    if isinstance(error, sdk.APIStatusError):
        status = error.status_code
        retry_after = _retry_after(getattr(error.response, "headers", None))
        if status == 429:
            return CallError("rate_limited", True, message, retry_after)
        if status >= 500 or status in (408, 409):
            return CallError("server_error", True, message, retry_after)
        return CallError("client_error", False, message)
    return CallError("backend_error", False, message)


def _api_key(spec: LLMSpec, *, required: bool) -> str | None:
    key = os.environ.get(spec.api_key_env or "") or None
    if key is None and required:
        raise UserError(
            f"{spec.who()} needs an API key: set the environment variable {spec.api_key_env} "
            f"(or give base_url for a local endpoint that needs none)"
        )
    return key


def _endpoint(spec: LLMSpec) -> tuple[Endpoint, str | None, dict[str, Any]]:
    """The endpoint, the API key and the SDK client's keyword arguments for `spec`; every secret
    among them is registered for redaction before any request is made."""
    endpoint = split_endpoint(spec.base_url)
    key = _api_key(spec, required=spec.base_url is None)
    for secret in [key, *endpoint.secrets()]:
        register_secret(secret)
    options: dict[str, Any] = {
        # A local endpoint without a key still needs a non-empty string for the SDK.
        "api_key": key or "no-key", "base_url": endpoint.url, "max_retries": 0, "timeout": spec.timeout,
        "default_query": endpoint.query or None, "default_headers": endpoint.headers(has_key=key is not None) or None,
    }  # fmt: skip
    return endpoint, key, options


def _provider_sdk(name: str):
    """The provider's SDK module (``openai`` or ``anthropic``), imported when its backend is built."""
    try:
        return importlib.import_module(name)  # heavy: the provider SDK loads only for its backend
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise UserError(f"the {name} backend needs the {name} SDK: pip install {name}") from e


class OpenAIBackend:
    """Chat completions on any OpenAI-compatible endpoint."""

    def __init__(self, spec: LLMSpec):
        self._sdk = openai = _provider_sdk("openai")
        self.spec = spec
        self.endpoint, _, options = _endpoint(spec)
        self.client = openai.AsyncOpenAI(**options)
        self._structured = spec.structured_output  # off for good once the endpoint refuses it

    def cache_params(self) -> dict[str, Any]:
        return {**self.spec.params, "structured_output": self.spec.structured_output}

    def _request(self, messages: list[dict[str, str]], json_schema: dict | None) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.spec.model, "messages": messages, **self.spec.params}
        if self._structured and json_schema is not None:
            request["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema}}
        return request

    async def generate(self, messages: list[dict[str, str]], *, json_schema: dict | None = None, grammar: Grammar | None = None) -> Generation:
        """`grammar` is not sent (no OpenAI-compatible API takes one); `json_schema` is."""
        try:
            response = await self.client.chat.completions.create(**self._request(messages, json_schema))
        except self._sdk.BadRequestError as e:
            if not (self._structured and json_schema is not None) or "response_format" not in str(e):
                raise
            self._structured = False  # the endpoint has no structured output: plain JSON
            response = await self.client.chat.completions.create(**self._request(messages, json_schema))
        if not response.choices:
            raise ValueError("the endpoint returned no choices")
        usage = response.usage
        return Generation(
            text=response.choices[0].message.content or "",
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
            model=response.model or self.spec.model,
            cached_input_tokens=getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0) or 0,
        )

    def classify(self, error: BaseException) -> CallError:
        return _classify_sdk_error(self._sdk, error)

    async def aclose(self) -> None:
        await self.client.close()


class AnthropicBackend:
    """The Anthropic Messages API."""

    def __init__(self, spec: LLMSpec):
        self._sdk = anthropic = _provider_sdk("anthropic")
        self.spec = spec
        self.endpoint, _, options = _endpoint(spec)
        self.client = anthropic.AsyncAnthropic(**options)

    def cache_params(self) -> dict[str, Any]:
        return dict(self.spec.params)

    async def generate(self, messages: list[dict[str, str]], *, json_schema: dict | None = None, grammar: Grammar | None = None) -> Generation:
        """`json_schema` and `grammar` are not sent: the Messages API gets the answer format from the prompt."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        params = {"max_tokens": 1024, **self.spec.params}
        response = await self.client.messages.create(model=self.spec.model, system=system, messages=turns, **params)
        text = "".join(getattr(block, "text", "") for block in response.content if getattr(block, "type", "") == "text")
        return Generation(
            text=text,
            # Anthropic counts cache reads apart from input_tokens; both are input the call used.
            input_tokens=(response.usage.input_tokens or 0) + (getattr(response.usage, "cache_read_input_tokens", 0) or 0),
            output_tokens=response.usage.output_tokens or 0,
            model=response.model or self.spec.model,
            cached_input_tokens=getattr(response.usage, "cache_read_input_tokens", 0) or 0,
        )

    def classify(self, error: BaseException) -> CallError:
        return _classify_sdk_error(self._sdk, error)

    async def aclose(self) -> None:
        await self.client.close()


def make_backend(spec: LLMSpec) -> LLMBackend:
    """The provider backend a spec names (openai, anthropic, hf)."""
    if spec.backend == "openai":
        return OpenAIBackend(spec)
    if spec.backend == "anthropic":
        return AnthropicBackend(spec)
    if spec.backend == "hf":
        return HFBackend(spec)
    raise ValueError(f"backend {spec.backend!r} is not an LLM backend")
