"""The sandbox's persistent records (JSON-shaped) and the read-only views it hands out.

Imports only the stdlib. Records are TypedDicts because they live in a JSON
document that transactions mutate in place; views are frozen dataclasses.
"""

from dataclasses import dataclass
from typing import Literal, TypedDict

__all__ = [
    "DEFAULT_BOX_MAX_SIZE_BYTES",
    "TERMINAL_UPLOAD_STATES",
    "AccessionInfo",
    "AccessionRecord",
    "BoxInfo",
    "BoxRecord",
    "StateData",
    "UploadInfo",
    "UploadRecord",
    "UploadState",
    "WorkPackageRecord",
    "accession_info",
    "empty_state",
    "upload_info",
]

UploadState = Literal[
    "init",
    "inbox",
    "failed",
    "cancelled",
    "interrogated",
    "awaiting_archival",
    "archived",
]
TERMINAL_UPLOAD_STATES = frozenset({"interrogated", "failed", "cancelled"})

# A new box's default limit on the sum of decrypted sizes (10 TiB).
DEFAULT_BOX_MAX_SIZE_BYTES = 10 * 1024**4


class WorkPackageRecord(TypedDict):
    """A work package: who may do what, and the hash of its access token."""

    id: str
    type: Literal["upload", "download"]
    token_sha256: str
    user_public_key: str  # base64, as `user_public_crypt4gh_key`
    files: dict[str, str] | None  # accession -> extension (download)
    research_data_upload_box_id: str | None
    file_upload_box_id: str | None
    created: float
    expires: float


class BoxRecord(TypedDict):
    """A file upload box (FUB) and the research data upload box (RDUB) it serves."""

    id: str
    rdub_id: str
    max_size_bytes: int
    locked: bool
    created: float


class UploadRecord(TypedDict):
    """A FileUpload of the UCS, from `init` to `interrogated` or `failed`."""

    id: str
    box_id: str
    alias: str
    decrypted_size: int
    encrypted_size: int
    part_size: int
    state: UploadState
    storage_alias: str
    object_upload_id: str
    created: float
    decrypted_sha256: str | None
    encrypted_md5: str | None
    encrypted_parts_md5: list[str]
    encrypted_parts_sha256: list[str]
    accession: str | None
    failure_reason: str | None


class AccessionRecord(TypedDict):
    """An archived file in the outbox: ciphertext only, plus its secret."""

    accession: str
    file_id: str
    name: str
    extension: str
    decrypted_size: int
    decrypted_sha256: str
    object_size: int
    session_key: str  # base64; the sandbox's stand-in for the EKSS secret
    created: float


class StateData(TypedDict):
    """The whole persistent state document."""

    version: int
    work_packages: dict[str, WorkPackageRecord]
    boxes: dict[str, BoxRecord]
    uploads: dict[str, UploadRecord]
    accessions: dict[str, AccessionRecord]
    next_accession_number: int
    default_box_id: str | None


def empty_state() -> StateData:
    """Return the state of a fresh sandbox."""
    return StateData(
        version=1,
        work_packages={},
        boxes={},
        uploads={},
        accessions={},
        next_accession_number=1,
        default_box_id=None,
    )


@dataclass(frozen=True, slots=True)
class BoxInfo:
    """A file upload box as listed by `Sandbox.boxes()`."""

    id: str
    research_data_upload_box_id: str
    max_size_bytes: int


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """A FileUpload as listed by `Sandbox.uploads()`."""

    id: str
    box_id: str
    alias: str
    state: str
    decrypted_size: int
    encrypted_size: int
    accession: str | None
    failure_reason: str | None


@dataclass(frozen=True, slots=True)
class AccessionInfo:
    """A registered accession as listed by `Sandbox.accessions()`."""

    accession: str
    name: str
    decrypted_size: int
    decrypted_sha256: str
    object_size: int


def upload_info(record: UploadRecord) -> UploadInfo:
    """Make the read-only view of an upload record."""
    return UploadInfo(
        id=record["id"],
        box_id=record["box_id"],
        alias=record["alias"],
        state=record["state"],
        decrypted_size=record["decrypted_size"],
        encrypted_size=record["encrypted_size"],
        accession=record["accession"],
        failure_reason=record["failure_reason"],
    )


def accession_info(record: AccessionRecord) -> AccessionInfo:
    """Make the read-only view of an accession record."""
    return AccessionInfo(
        accession=record["accession"],
        name=record["name"],
        decrypted_size=record["decrypted_size"],
        decrypted_sha256=record["decrypted_sha256"],
        object_size=record["object_size"],
    )
