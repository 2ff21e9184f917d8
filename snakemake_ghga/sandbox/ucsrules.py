"""The UCS's pure rules: request bodies, part sizes, part layout and the ETag check.

Imports only the stdlib and the sandbox's `problems` and `objects` (for
PartInfo and the multipart ETag); no I/O. Limits follow reference §1.5/§8.9:
5 MiB ≤ part_size ≤ 5 GiB, at most 10,000 parts, parts 1..N without gaps and
every part but the last exactly part_size (stricter than S3, §9.3).
"""

import math
import re
from dataclasses import dataclass

from .objects import PartInfo, multipart_etag
from .problems import HttpProblem

__all__ = [
    "MAX_PART_COUNT",
    "MAX_PART_SIZE_BYTES",
    "MIN_PART_SIZE_BYTES",
    "CloseRequest",
    "CreateRequest",
    "check_part_size",
    "check_parts",
    "parse_close_body",
    "parse_create_body",
    "unprocessable",
]

MIN_PART_SIZE_BYTES = 5 * 1024**2
MAX_PART_SIZE_BYTES = 5 * 1024**3
MAX_PART_COUNT = 10_000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_ETAG = re.compile(r"[0-9a-f]{32}-[1-9][0-9]*")


def unprocessable(description: str) -> HttpProblem:
    """A 422, as FastAPI answers a body or parameter that fails validation."""
    return HttpProblem(422, "validationError", description)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A validated U2 body."""

    alias: str
    decrypted_size: int
    encrypted_size: int
    part_size: int
    overwrite: bool


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_create_body(body: object) -> CreateRequest:
    """Validate the U2 body as the UCS's pydantic model does (422 otherwise)."""
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    alias, overwrite = body.get("alias"), body.get("overwrite", False)
    if not isinstance(alias, str) or not alias or not isinstance(overwrite, bool):
        raise unprocessable("alias must be a non-empty string, overwrite a bool")
    names = ("decrypted_size", "encrypted_size", "part_size")
    if not all(_is_int(body.get(name)) for name in names):
        raise unprocessable("decrypted_size, encrypted_size, part_size must be ints")
    request = CreateRequest(
        alias,
        body["decrypted_size"],
        body["encrypted_size"],
        body["part_size"],
        overwrite,
    )
    if request.decrypted_size < 1 or request.encrypted_size <= request.decrypted_size:
        raise unprocessable(
            "need decrypted_size >= 1 and encrypted_size > decrypted_size"
        )
    return request


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """A validated U5 body."""

    decrypted_sha256: str
    encrypted_md5: str
    encrypted_parts_md5: list[str]
    encrypted_parts_sha256: list[str]


def _hex_list(values: object, pattern: re.Pattern[str]) -> list[str] | None:
    if not isinstance(values, list):
        return None
    if not all(isinstance(v, str) and pattern.fullmatch(v) for v in values):
        return None
    return [str(v) for v in values]


def parse_close_body(body: object) -> CloseRequest:
    """Validate the U5 body: hex digests, `<md5>-<N>`, equal-length part lists."""
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    sha, md5 = body.get("decrypted_sha256"), body.get("encrypted_md5")
    md5s = _hex_list(body.get("encrypted_parts_md5"), _HEX32)
    shas = _hex_list(body.get("encrypted_parts_sha256"), _HEX64)
    if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise unprocessable("decrypted_sha256 must be 64 lowercase hex digits")
    if not (isinstance(md5, str) and _ETAG.fullmatch(md5)):
        raise unprocessable("encrypted_md5 must be '<32 hex digits>-<parts>'")
    if md5s is None or shas is None:
        raise unprocessable("part checksums must be lists of hex digests")
    if len(md5s) != len(shas):
        raise unprocessable("the part checksum lists differ in length")
    return CloseRequest(sha, md5, md5s, shas)


def check_part_size(encrypted_size: int, part_size: int) -> None:
    """400 invalidPartSize unless 5 MiB ≤ part_size ≤ 5 GiB and ≤ 10,000 parts."""
    if not MIN_PART_SIZE_BYTES <= part_size <= MAX_PART_SIZE_BYTES:
        raise HttpProblem(
            400,
            "invalidPartSize",
            f"part_size {part_size} is outside [{MIN_PART_SIZE_BYTES}, "
            f"{MAX_PART_SIZE_BYTES}]",
        )
    parts = math.ceil(encrypted_size / part_size)
    if parts > MAX_PART_COUNT:
        raise HttpProblem(
            400,
            "invalidPartSize",
            f"{parts} parts exceed the limit of {MAX_PART_COUNT}",
        )


def _check_layout(parts: list[PartInfo], part_size: int) -> None:
    numbers = [p.number for p in parts]
    if not parts or numbers != list(range(1, len(parts) + 1)):
        raise HttpProblem(
            400,
            "uploadSizeMismatch",
            f"part numbers {numbers[:20]} are not 1..{len(parts)}",
        )
    for part in parts[:-1]:
        if part.size_bytes != part_size:
            raise HttpProblem(
                400,
                "uploadSizeMismatch",
                f"part {part.number} has {part.size_bytes} bytes, not the declared "
                f"part size {part_size}",
            )


def check_parts(
    parts: list[PartInfo], part_size: int, encrypted_size: int, encrypted_md5: str
) -> None:
    """Check the uploaded parts at close: layout, then ETag, then total size.

    Raises:
        HttpProblem: 400 uploadSizeMismatch (layout or size) or checksumMismatch.
    """
    _check_layout(parts, part_size)
    etag = multipart_etag([p.etag for p in parts])
    if etag != encrypted_md5:
        raise HttpProblem(
            400,
            "checksumMismatch",
            f"the object's ETag {etag} differs from encrypted_md5 {encrypted_md5}",
        )
    size = sum(p.size_bytes for p in parts)
    if size != encrypted_size:
        raise HttpProblem(
            400,
            "uploadSizeMismatch",
            f"the object has {size} bytes, declared encrypted_size is {encrypted_size}",
        )
