"""Parse and validate `ghga://` queries; pure functions, no I/O.

Two forms exist:
- `ghga://<ACCESSION>`: a file of a download work package (input, read-only);
- `ghga://upload/<alias>`: a file in the upload box of an upload work package
  (output, write-only); the alias may contain `/`.

Validation is strict, so that `storage("ghga://…")` never matches another plugin
and a typo fails at parse time with a reason. Snakemake wildcards (`{sample}`,
`{sample,[a-z]+}`) are accepted wherever a value could be; the concrete query is
validated again after the wildcards are filled in.

Must not import `snakemake_ghga` (this module is shared by the settings-free
class methods that Snakemake calls on every installed plugin).
"""

import enum
import re
from dataclasses import dataclass

from snakemake_interface_storage_plugins.io import WILDCARD_REGEX

__all__ = [
    "SCHEME",
    "UPLOAD_PREFIX",
    "GhgaQuery",
    "QueryKind",
    "has_wildcards",
    "invalid_reason",
    "parse_query",
]

SCHEME = "ghga://"
UPLOAD_PREFIX = "upload/"

_ACCESSION_PREFIX = "GHGAF"
_ACCESSION_RE = re.compile(r"GHGAF[A-Za-z0-9]+")
_ACCESSION_CHARS_RE = re.compile(r"[A-Za-z0-9]*")
_OTHER_ACCESSION_RE = re.compile(r"GHGA[A-EG-Z][A-Za-z0-9]*")
_ALIAS_SEGMENT_RE = re.compile(r"[A-Za-z0-9._+=@,~-]+")
_WILDCARD_STANDIN = "w"
MAX_ALIAS_LENGTH = 1024


class QueryKind(enum.Enum):
    """What a query addresses."""

    ACCESSION = "accession"
    UPLOAD = "upload"


@dataclass(frozen=True, slots=True)
class GhgaQuery:
    """A parsed query: an accession (input) or an upload alias (output)."""

    kind: QueryKind
    name: str

    @property
    def is_upload(self) -> bool:
        """Return True for `ghga://upload/<alias>` queries."""
        return self.kind is QueryKind.UPLOAD


def has_wildcards(text: str) -> bool:
    """Return True if the text contains a Snakemake wildcard like `{sample}`."""
    return WILDCARD_REGEX.search(text) is not None


def parse_query(query: str) -> GhgaQuery:
    """Split a query into its kind and its accession or alias.

    Raises:
        ValueError: the query is invalid; the message says why.
    """
    reason = invalid_reason(query)
    if reason is not None:
        raise ValueError(f"invalid GHGA query {query!r}: {reason}")
    rest = query.removeprefix(SCHEME)
    if rest.startswith(UPLOAD_PREFIX):
        return GhgaQuery(QueryKind.UPLOAD, rest.removeprefix(UPLOAD_PREFIX))
    return GhgaQuery(QueryKind.ACCESSION, rest)


def invalid_reason(query: str) -> str | None:
    """Return why the query is not a valid GHGA query, or None if it is valid."""
    if not query.startswith(SCHEME):
        return f"a GHGA query starts with {SCHEME!r}"
    rest = query.removeprefix(SCHEME)
    if not rest:
        return (
            f"{SCHEME!r} must be followed by a file accession (GHGAF…) "
            f"or {UPLOAD_PREFIX!r} and an alias"
        )
    if rest == UPLOAD_PREFIX.rstrip("/"):
        return _alias_reason("")
    if rest.startswith(UPLOAD_PREFIX):
        return _alias_reason(rest.removeprefix(UPLOAD_PREFIX))
    return _accession_reason(rest)


def _accession_reason(accession: str) -> str | None:
    literals = _literal_parts(accession)
    if any(not _ACCESSION_CHARS_RE.fullmatch(part) for part in literals):
        if "/" in accession:
            return (
                f"after {SCHEME!r} comes one file accession without '/'; "
                f"outputs are written as {SCHEME}{UPLOAD_PREFIX}<alias>"
            )
        return "a file accession has only letters and digits, like GHGAF12345678901234"
    if has_wildcards(accession):
        prefix = literals[0]
        if _ACCESSION_PREFIX.startswith(prefix) or prefix.startswith(_ACCESSION_PREFIX):
            return None
    elif _ACCESSION_RE.fullmatch(accession):
        return None
    if _OTHER_ACCESSION_RE.fullmatch(accession):
        return (
            f"{accession} is not a file accession; only files (GHGAF…) can be "
            "transferred; list the file accessions of a dataset in the Data Portal"
        )
    return f"{accession!r} is not a file accession (like GHGAF12345678901234)"


def _alias_reason(alias: str) -> str | None:
    if not alias:
        return f"an alias must follow {SCHEME}{UPLOAD_PREFIX}"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"the alias is longer than {MAX_ALIAS_LENGTH} characters"
    concrete = WILDCARD_REGEX.sub(_WILDCARD_STANDIN, alias)
    for segment in concrete.split("/"):
        if segment in ("", ".", ".."):
            return (
                "the alias must not start or end with '/' and must not contain "
                "'//', '/./' or '/../'"
            )
        if not _ALIAS_SEGMENT_RE.fullmatch(segment):
            bad = sorted({c for c in segment if not _ALIAS_SEGMENT_RE.fullmatch(c)})
            return (
                f"the alias contains {''.join(bad)!r}; allowed are letters, digits, "
                "'/' and ._+=@,~-"
            )
    return None


def _literal_parts(text: str) -> list[str]:
    """Return the text between wildcards (the first item precedes any wildcard)."""
    marked: str = WILDCARD_REGEX.sub("\0", text)
    return marked.split("\0")
