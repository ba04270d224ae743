"""Keeping credentials out of everything DCA writes (cache keys, stored requests, records).

A reviewers file never holds a key (`dca.review.config` refuses ``api_key`` entries and
key-like ``params``), but a ``base_url`` may still carry one, as user-info
(``https://user:sk-...@host/v1``) or as a query parameter (``...?api_key=sk-...``). Such a URL is
used for the call as given, but only `redact_url`'s form is ever stored or hashed: the same
endpoint gets the same cache key whatever key it was called with.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
