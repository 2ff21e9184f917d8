"""Redaction of secrets for messages and logs; imports only the stdlib.

Presigned URLs carry their signature in the query string, work-package tokens
carry a sealed access token: neither may reach a message, a log line or a repr.
"""

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_secret", "redact_text", "redact_url"]

# `<work package id>:<base64 sealed box>` as the GHGA Data Portal shows it.
_TOKEN_RE = re.compile(r"[A-Za-z0-9-]{8,}:[A-Za-z0-9+/=_-]{40,}")
_QUERY_RE = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s#'\"]*")
_BEARER_RE = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return the URL without its query string and fragment (where signatures live)."""
    parts = urlsplit(url)
    if not parts.query and not parts.fragment:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + "?<redacted>"


def redact_secret(secret: str | None) -> str:
    """Return a fixed placeholder that says only whether a secret is set."""
    return "<unset>" if not secret else "<redacted>"


def redact_text(text: str) -> str:
    """Strip URL queries, bearer values and work-package tokens from free text."""
    text = _QUERY_RE.sub(r"\1?<redacted>", text)
    text = _BEARER_RE.sub(r"\1<redacted>", text)
    return _TOKEN_RE.sub("<redacted-token>", text)
