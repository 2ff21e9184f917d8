"""Redaction of secrets for messages and logs; imports only the stdlib.

Presigned URLs carry their signature in the query string, work-package tokens
carry a sealed access token, a proxy URL may carry a password: none may reach
a message, a log line or a repr.
Third-party loggers are covered too: ``install_log_redaction`` puts a
``RedactingFilter`` on urllib3's loggers, which at DEBUG log each request line
with its query (``"PUT /bucket/key?...&signature=... HTTP/1.1"``).
"""

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "RedactingFilter",
    "install_log_redaction",
    "redact_secret",
    "redact_text",
    "redact_url",
]

# `<work package id>:<base64 sealed box>` as the GHGA Data Portal shows it.
_TOKEN_RE = re.compile(r"[A-Za-z0-9-]{8,}:[A-Za-z0-9+/=_-]{40,}")
_QUERY_RE = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s#'\"]*")
# a bare request path with a query, as in urllib3's `"GET /path?query HTTP/1.1"`
_PATH_QUERY_RE = re.compile(r"((?:^|[\s\"'(=])/[^\s?#'\"]*)\?[^\s#'\"]+")
_BEARER_RE = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)
# `user:password@` in a URL, e.g. a proxy's in HTTPS_PROXY
_USERINFO_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@'\"]+@")


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
    """Strip URL queries and credentials, bearer values and tokens from free text."""
    text = _USERINFO_RE.sub(r"\1<redacted>@", text)
    text = _QUERY_RE.sub(r"\1?<redacted>", text)
    text = _PATH_QUERY_RE.sub(r"\1?<redacted>", text)
    text = _BEARER_RE.sub(r"\1<redacted>", text)
    return _TOKEN_RE.sub("<redacted-token>", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through ``redact_text``; never drops records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# urllib3 creates one logger per module; a logger's filters see only records
# created on that very logger, so each needs its own filter.
_URLLIB3_LOGGERS = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Put a ``RedactingFilter`` on every urllib3 logger (idempotent)."""
    with _install_lock:
        known = [
            name
            for name in logging.Logger.manager.loggerDict
            if name.startswith("urllib3.")
        ]
        for name in sorted({*_URLLIB3_LOGGERS, *known}):
            target = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(RedactingFilter())
