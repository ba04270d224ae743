"""Keeping credentials out of everything DCA writes (cache keys, stored requests, records, logs).

A reviewers file never holds a key (`dca.review.config` refuses ``api_key`` entries and
key-like ``params``), but a ``base_url`` may still carry one, as user-info
(``https://user:sk-...@host/v1``) or as a query parameter (``...?api_key=sk-...``). Only
`redact_url`'s form of such a URL is ever stored or hashed: the same endpoint gets the same cache
key whatever key it was called with. `split_endpoint` takes the URL apart for the call itself:
the user-info becomes an HTTP Basic header and the query its parameters, passed through the
SDK's own options (never concatenated onto a request path).

**Redaction by value.** A server may echo a credential anywhere: in an error body, in a
``model`` field, inside an answer. So every secret a backend knows (the API key from the
environment, the URL's password, the values of key-like query parameters) is registered with
`register_secret`, and `redact` masks each of its forms (plain, URL-encoded, base64, and the
base64 of the ``user:password`` pair a Basic header carries) in any text. The LLM client
redacts every answer and error before it is cached, recorded or raised, and log records are
redacted as they are formatted.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

#: Parameter names that hold credentials (matched case-insensitively, ignoring - and _).
_SECRET = re.compile(r"^(api_?key|key|token|access_?token|auth|authorization|secret|client_?secret|password|passwd|sig|signature|x_?api_?key|bearer)$")


def is_secret_name(name: str) -> bool:
    """Whether a parameter or header name holds a credential (``api_key``, ``X-Api-Key``, ``token``...)."""
    return bool(_SECRET.match(str(name).lower().replace("-", "_")))


def redact_url(url: str | None) -> str | None:
    """`url` without user-info and without credential query parameters (None stays None)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_secret_name(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_has_credentials(url: str | None) -> bool:
    """Whether `url` carries user-info or a credential query parameter."""
    return bool(url) and redact_url(url) != url


# ---------------------------------------------------------------------------------------------
# Endpoints


@dataclass
class Endpoint:
    """A ``base_url`` taken apart: what the SDK gets as its base URL, query and headers."""

    url: str | None
    """Without user-info and without query."""
    query: dict[str, str] = field(default_factory=dict)
    """Every query parameter of the URL (the SDK's ``default_query``)."""
    username: str = ""
    password: str = ""

    def basic_header(self) -> str | None:
        """``Basic <base64 of user:password>`` for the URL's user-info (None without one)."""
        if not (self.username or self.password):
            return None
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def headers(self, *, has_key: bool) -> dict[str, str]:
        """The user-info as a header: ``Authorization`` when there is no API key (as HTTP does
        with a URL's user-info), ``Proxy-Authorization`` beside an API key, which keeps
        ``Authorization`` (a login for the gateway in front, the key for the provider)."""
        basic = self.basic_header()
        if basic is None:
            return {}
        return {"Proxy-Authorization" if has_key else "Authorization": basic}

    def secrets(self) -> list[str]:
        """The values to redact: the password, the user:password pair, key-like query values."""
        values = [v for k, v in self.query.items() if is_secret_name(k)]
        if self.password:
            values += [self.password, f"{self.username}:{self.password}"]
        return values


def split_endpoint(url: str | None) -> Endpoint:
    """`url` taken apart (see `Endpoint`); None stays None."""
    if not url:
        return Endpoint(url=url)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return Endpoint(url=url)
    host = f"[{hostname}]" if ":" in hostname else hostname
    return Endpoint(
        url=urlunsplit((parts.scheme, host + port, parts.path, "", parts.fragment)),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


# ---------------------------------------------------------------------------------------------
# Redaction by value

MASK = "***"

#: Shorter values are not masked (they would mask ordinary words).
MIN_SECRET_LENGTH = 4

_forms: set[str] = set()
_forms_lock = threading.Lock()
_pattern: re.Pattern | None = None


def secret_forms(value: str) -> set[str]:
    """The spellings of `value` a server may echo: plain, URL-encoded, base64 (standard and
    URL-safe, with and without padding)."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(value.encode()).decode()
        forms |= {encoded, encoded.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def register_secret(value: str | None) -> None:
    """Mask `value` (in all of `secret_forms`) in everything `redact` sees from now on."""
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _forms_lock:
        new = secret_forms(value) - _forms
        if not new:
            return
        _forms.update(new)
        ordered = sorted(_forms, key=len, reverse=True)  # the longest form first: no half-masked key
        _pattern = re.compile("|".join(map(re.escape, ordered)))
    _install_log_redaction()


def redact(text: str) -> str:
    """`text` with every registered secret, in every form, replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


_log_factory_installed = False


def _install_log_redaction() -> None:
    """Log records (httpx logs request URLs) are redacted when formatted, whatever the logger."""
    global _log_factory_installed
    if _log_factory_installed:
        return
    _log_factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        record.getMessage = lambda original=record.getMessage: redact(original())
        return record

    logging.setLogRecordFactory(factory)
