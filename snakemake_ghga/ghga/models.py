"""Typed views of the GHGA JSON API responses and the error-body mapping.

Helper of ``ghga.api``: imports ``errors`` and the stdlib only. One frozen
dataclass per response; every parser raises ``ApiError`` on a malformed body;
values that become local names or sizes are checked as coming from a
server we do not trust (``download_file_name``, the DRS size and SHA-256);
and ``error_for`` turns any error response into a ``GhgaError`` subclass whose
message says what happened and whose hint says what to do.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from snakemake_ghga.errors import ApiError, AuthError, NotFoundError

__all__ = [
    "MAX_OBJECT_BYTES",
    "CreatedUpload",
    "DrsObject",
    "FileUpload",
    "Staging",
    "UploadChecksums",
    "WellKnownValues",
    "WorkPackage",
    "decode_envelope",
    "download_file_name",
    "error_for",
    "jwt_claims",
    "parse_created_upload",
    "parse_drs_object",
    "parse_json",
    "parse_upload_page",
    "parse_well_known",
    "parse_work_package",
    "require_string",
    "shown",
]

_T = TypeVar("_T")
# names the server gives us become local file names: plain ones only
_ACCESSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_EXTENSION_RE = re.compile(r"(\.[A-Za-z0-9_-]{1,16}){0,4}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# 1 PiB: far above any S3 object (5 TiB, lately 50 TB), far below off_t's range
MAX_OBJECT_BYTES = 1 << 50


@dataclass(frozen=True, slots=True)
class WellKnownValues:
    """The WKVS ``/values``: service URLs and the Data Hubs' public keys."""

    wps_url: str
    ucs_url: str
    dcs_url: str
    crypt4gh_public_keys: dict[str, str]


@dataclass(frozen=True, slots=True)
class WorkPackage:
    """``GET /work-packages/{id}``: files (download) and box ids (upload).

    ``type`` is "download" or "upload" (None if the service omits it).
    """

    package_id: str
    files: dict[str, str]
    research_data_upload_box_id: str | None
    file_upload_box_id: str | None
    type: str | None = None

    @property
    def is_upload_only(self) -> bool:
        """True for an upload package: typed so, or untyped with a box and no files."""
        if self.type is not None:
            return self.type == "upload"
        return not self.files and bool(self.file_upload_box_id)

    def require_download(self) -> None:
        """Raise ``AuthError`` if this package cannot be used for downloads."""
        if self.is_upload_only:
            raise AuthError(
                f"work package {self.package_id} is an upload work package, "
                "not for downloads",
                "Request a download token in the GHGA Data Portal",
            )

    def require_upload(self) -> tuple[str, str]:
        """Return (research data upload box id, file upload box id).

        Raises:
            AuthError: this is a download package (or it names no boxes).
        """
        rdub, fub = self.research_data_upload_box_id, self.file_upload_box_id
        if self.type == "download" or not rdub or not fub:
            kind = "a download work package, " if self.type == "download" else ""
            raise AuthError(
                f"work package {self.package_id} is {kind}not for uploads",
                "Request an upload token for your research data upload box "
                "in the GHGA Data Portal",
            )
        return rdub, fub


@dataclass(frozen=True, slots=True)
class FileUpload:
    """One entry of the box listing."""

    file_id: str
    alias: str
    state: str
    decrypted_size: int
    encrypted_size: int
    decrypted_sha256: str | None = None  # only in a listing ``with_checksums``


@dataclass(frozen=True, slots=True)
class CreatedUpload:
    """The answer to creating a file upload."""

    file_id: str
    alias: str
    storage_alias: str


@dataclass(frozen=True, slots=True)
class UploadChecksums:
    """The body of the close (PATCH) request."""

    decrypted_sha256: str
    encrypted_md5: str
    encrypted_parts_md5: list[str]
    encrypted_parts_sha256: list[str]


@dataclass(frozen=True, slots=True)
class DrsObject:
    """A staged DRS object: header-less ciphertext size and a presigned URL."""

    accession: str
    size: int
    sha256: str | None
    url: str = field(repr=False)
    max_age_s: float | None


@dataclass(frozen=True, slots=True)
class Staging:
    """The archive is still staging the file; ask again after ``retry_after_s``."""

    accession: str
    retry_after_s: float


def _unexpected(what: str, problem: str) -> ApiError:
    """The error for a response body of the wrong shape."""
    return ApiError(
        f"{what}: unexpected response, {problem}",
        "The service may have changed; check for a newer snakemake-ghga",
    )


def parse_json(content: str | bytes, what: str) -> Any:
    """Decode a JSON body (None if empty), else raise ``ApiError``."""
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deep
        raise _unexpected(what, "not JSON") from err


def require_string(body: Any, what: str) -> str:
    """Return ``body`` if it is a JSON string, else raise ``ApiError``."""
    if not isinstance(body, str):
        raise _unexpected(what, "not a JSON string")
    return body


def _require_field(body: Any, key: str, kind: type[_T], what: str) -> _T:
    """Return ``body[key]`` if it is a ``kind`` (a bool is no int), else raise."""
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _unexpected(what, f"field '{key}' missing or not {kind.__name__}")
    return value


def _optional_string(body: dict[str, Any], key: str, what: str) -> str | None:
    """Return ``body[key]``: None if missing or null, else it must be a string."""
    return None if body.get(key) is None else _require_field(body, key, str, what)


def _string_values(mapping: dict[str, Any], key: str, what: str) -> dict[str, str]:
    """Return the object ``mapping`` (field ``key``) if all its values are strings."""
    if not all(isinstance(value, str) for value in mapping.values()):
        raise _unexpected(what, f"field '{key}' has a value that is not a string")
    return dict(mapping)


def parse_well_known(body: Any) -> WellKnownValues:
    """Parse the WKVS values (URLs lose a trailing slash)."""
    what = "well-known values"
    urls = [
        _require_field(body, key, str, what).rstrip("/")
        for key in ("wps_api_url", "ucs_api_url", "dcs_api_url")
    ]
    keys = _require_field(body, "crypt4gh_public_keys", dict, what)
    return WellKnownValues(
        urls[0], urls[1], urls[2], _string_values(keys, "crypt4gh_public_keys", what)
    )


def parse_work_package(package_id: str, body: Any) -> WorkPackage:
    """Parse ``GET /work-packages/{id}`` ("files" and the other fields may be null)."""
    what = f"work package {package_id}"
    if not isinstance(body, dict):
        raise _unexpected(what, "not a JSON object")
    files = body.get("files") or {}
    if not isinstance(files, dict):
        raise _unexpected(what, "field 'files' is not an object")
    return WorkPackage(
        package_id,
        _string_values(files, "files", what),
        _optional_string(body, "research_data_upload_box_id", what),
        _optional_string(body, "file_upload_box_id", what),
        _optional_string(body, "type", what),
    )


def parse_upload_page(body: Any) -> tuple[list[FileUpload], int]:
    """Parse one page of the box listing: its uploads and the box's total count."""
    what = "upload listing"
    items = _require_field(body, "items", list, what)
    total_count = _require_field(body, "total_count", int, what)
    return [_parse_file_upload(item, what) for item in items], total_count


def _parse_file_upload(item: Any, what: str) -> FileUpload:
    return FileUpload(
        _require_field(item, "id", str, what),
        _require_field(item, "alias", str, what),
        _require_field(item, "state", str, what),
        _require_field(item, "decrypted_size", int, what),
        _require_field(item, "encrypted_size", int, what),
        _optional_string(item, "decrypted_sha256", what),
    )


def parse_created_upload(alias: str, body: Any) -> CreatedUpload:
    """Parse the answer to creating the upload of ``alias`` (it must echo it)."""
    what = f"creating the upload of '{alias}'"
    created = CreatedUpload(
        _require_field(body, "file_id", str, what),
        _require_field(body, "alias", str, what),
        _require_field(body, "storage_alias", str, what),
    )
    if created.alias != alias:
        raise _unexpected(what, f"it is for alias '{created.alias}'")
    return created


def shown(value: str) -> str:
    """``value`` quoted, with control and non-ASCII characters escaped, cut short."""
    text = ascii(value)
    return text if len(text) <= 80 else f"{text[:76]}...'"


def download_file_name(accession: str, extension: str) -> str:
    """Return ``accession + extension`` if both make a plain file name.

    Raises:
        ApiError: the work package gave a name that could leave the output
            directory or is no plain name (a path, "..", a control character).
    """
    if not _ACCESSION_RE.fullmatch(accession):
        problem = f"the accession {shown(accession)}"
    elif not _EXTENSION_RE.fullmatch(extension):
        problem = f"the file extension {shown(extension)}"
    else:
        return accession + extension
    raise ApiError(
        f"the work package lists {problem}, which is not a plain file name",
        "Nothing was written for it; report it to GHGA",
    )


def parse_drs_object(accession: str, body: Any, max_age_s: float | None) -> DrsObject:
    """Parse a DRS object; the URL is the first ``s3`` access method."""
    what = f"DRS object {accession}"
    size = _require_field(body, "size", int, what)
    if not 0 <= size <= MAX_OBJECT_BYTES:
        raise _unexpected(what, f"field 'size' ({size}) is not a plausible byte count")
    return DrsObject(
        accession, size, _drs_sha256(body, what), _drs_s3_url(body, what), max_age_s
    )


def _drs_s3_url(body: dict[str, Any], what: str) -> str:
    """Return the URL of the first ``s3`` access method."""
    for method in _require_field(body, "access_methods", list, what):
        if isinstance(method, dict) and method.get("type") == "s3":
            access_url = _require_field(method, "access_url", dict, what)
            return _require_field(access_url, "url", str, what)
    raise ApiError(f"{what}: no s3 access URL in the response")


def _drs_sha256(body: dict[str, Any], what: str) -> str | None:
    """Return the SHA-256 among the checksums, None if there is none."""
    checksums = body.get("checksums") or []
    if not isinstance(checksums, list):
        raise _unexpected(what, "field 'checksums' is not a list")
    for item in checksums:
        if not isinstance(item, dict):
            raise _unexpected(what, "an entry of 'checksums' is not an object")
        if item.get("type") in ("sha-256", "sha256"):
            checksum = _require_field(item, "checksum", str, what).lower()
            if not _SHA256_RE.fullmatch(checksum):
                problem = f"the SHA-256 {shown(checksum)} is not 64 hex digits"
                raise _unexpected(what, problem)
            return checksum
    return None


def decode_envelope(text: str, accession: str) -> bytes:
    """Decode the envelope body: base64, possibly JSON-quoted."""
    what = f"the envelope of {accession}"
    stripped = text.strip()
    if stripped.startswith('"'):
        stripped = parse_json(stripped, what)
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _unexpected(what, "not valid base64") from err


def jwt_claims(token: str) -> dict[str, Any]:
    """Return the payload of a compact JWS without verifying it ({} if opaque)."""
    pieces = token.split(".")
    if len(pieces) != 3:
        return {}
    payload = pieces[1] + "=" * (-len(pieces[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


_KNOWN_ERRORS: dict[str, tuple[str, str]] = {
    "noSuchStorage": ("the upload box points to an unknown storage", "Contact GHGA"),
    "invalidPartSize": ("the server refused the part size", "Try --part-size 64"),
    "checksumMismatch": (
        "the uploaded object's checksum does not match what the client sent",
        "Upload the file again; if it repeats, report it to GHGA",
    ),
    "uploadSizeMismatch": (
        "the uploaded object's size does not match the declared size",
        "Upload the file again",
    ),
    "boxNotFound": ("the upload box does not exist", "Request a new token"),
    "boxStateError": (
        "the upload box is locked",
        "Ask the box's data steward to unlock it",
    ),
    "fileUploadAlreadyExists": (
        "a file with this alias is already in the box",
        "Pass --overwrite to replace it, or choose another alias",
    ),
    "orphanedMultipartUpload": (
        "a stale multipart upload blocks this alias",
        "Remove the alias (ghga-transfer rm ALIAS) and retry",
    ),
    "tooManyOpenUploads": (
        "the box already has the maximum number of unfinished uploads",
        "Wait for them to finish, or remove stale ones (ghga-transfer ls / rm)",
    ),
    "boxMaxSizeExceeded": (
        "the upload would exceed the box's size limit",
        "Remove files from the box or ask GHGA for a larger box",
    ),
    "fileUploadNotFound": ("the file upload is not in the box", "Check the alias"),
    "s3UploadNotFound": (
        "the storage no longer knows this upload",
        "Remove the alias (ghga-transfer rm ALIAS) and upload it again",
    ),
    "fileUploadStateError": (
        "the file upload was already cancelled or has failed",
        "Upload the file again",
    ),
    "uploadCompletionError": (
        "the storage could not complete the upload",
        "Retry later; if it repeats, report it to GHGA",
    ),
}


def _body_fields(text: str) -> tuple[str | None, str | None]:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    exception_id = body.get("exception_id")
    detail = body.get("description") or body.get("detail")
    return (
        exception_id if isinstance(exception_id, str) else None,
        str(detail) if detail else None,
    )


def error_for(status: int, text: str, what: str) -> ApiError:
    """Map an error response to an exception saying what happened and what to do.

    Args:
        status: the HTTP status code.
        text: the response body (httpyexpect JSON or anything else).
        what: the request in words, e.g. "creating upload 'a.bam'".
    """
    exception_id, detail = _body_fields(text)
    suffix = f" ({detail})" if detail else ""
    if exception_id in _KNOWN_ERRORS:
        happened, hint = _KNOWN_ERRORS[exception_id]
        cls = NotFoundError if status == 404 else ApiError
        return cls(
            f"{what}: {happened}{suffix}",
            hint,
            status=status,
            exception_id=exception_id,
        )
    if status in (401, 403):
        return AuthError(
            f"{what}: access denied (HTTP {status}){suffix}",
            "The work package token may have expired or not cover this; "
            "request a new token in the GHGA Data Portal",
            status=status,
            exception_id=exception_id,
        )
    if status == 404:
        return NotFoundError(
            f"{what}: not found (HTTP 404){suffix}",
            "Check the accession or alias",
            status=status,
            exception_id=exception_id,
        )
    return ApiError(
        f"{what}: the service answered HTTP {status}{suffix}",
        "Retry later; if it repeats, report it to GHGA",
        status=status,
        exception_id=exception_id,
    )
