"""The Data Portal's part: creating boxes and work packages, and their printed tokens.

Imports the stdlib, `snakemake_ghga.errors` and the sandbox's `state`,
`records` and `tokens`. A work package token is printed as
`<work_package_id>:<base64 sealed access token>`, exactly as the portal shows it.
"""

import base64
import time
import uuid

from snakemake_ghga.errors import ConfigError

from .records import DEFAULT_BOX_MAX_SIZE_BYTES, BoxRecord, StateData, WorkPackageRecord
from .state import StateStore
from .tokens import format_portal_token, hash_access_token, new_access_token, seal_to

__all__ = [
    "DEFAULT_BOX_MAX_SIZE_BYTES",
    "WORK_PACKAGE_VALID_S",
    "create_download_package",
    "create_upload_package",
]

WORK_PACKAGE_VALID_S = 30 * 24 * 3600


def _new_box(state: StateData, max_size_bytes: int) -> BoxRecord:
    box = BoxRecord(
        id=str(uuid.uuid4()),
        rdub_id=str(uuid.uuid4()),
        max_size_bytes=max_size_bytes,
        locked=False,
        created=time.time(),
    )
    state["boxes"][box["id"]] = box
    return box


def _add_package(
    state: StateData, user_public_key: bytes, package: WorkPackageRecord
) -> str:
    token = new_access_token()
    package["token_sha256"] = hash_access_token(token)
    state["work_packages"][package["id"]] = package
    return format_portal_token(package["id"], seal_to(user_public_key, token.encode()))


def _package(kind: str, user_public_key: bytes) -> WorkPackageRecord:
    now = time.time()
    return WorkPackageRecord(
        id=str(uuid.uuid4()),
        type="upload" if kind == "upload" else "download",
        token_sha256="",
        user_public_key=base64.b64encode(user_public_key).decode("ascii"),
        files=None,
        research_data_upload_box_id=None,
        file_upload_box_id=None,
        created=now,
        expires=now + WORK_PACKAGE_VALID_S,
    )


def create_upload_package(
    store: StateStore,
    user_public_key: bytes,
    *,
    new_box: bool = False,
    box_max_size_bytes: int = DEFAULT_BOX_MAX_SIZE_BYTES,
) -> str:
    """Create an upload work package for the default (or a new) box.

    Returns:
        The token as the portal prints it.
    """
    with store.transaction() as state:
        default = state["default_box_id"]
        if new_box or default is None or default not in state["boxes"]:
            box = _new_box(state, box_max_size_bytes)
            if not new_box or default is None:
                state["default_box_id"] = box["id"]
        else:
            box = state["boxes"][default]
        package = _package("upload", user_public_key)
        package["research_data_upload_box_id"] = box["rdub_id"]
        package["file_upload_box_id"] = box["id"]
        return _add_package(state, user_public_key, package)


def create_download_package(
    store: StateStore, user_public_key: bytes, accessions: list[str] | None = None
) -> str:
    """Create a download work package for some (default: all) accessions.

    Returns:
        The token as the portal prints it.

    Raises:
        ConfigError: an accession is unknown, or none is registered.
    """
    with store.transaction() as state:
        registered = state["accessions"]
        wanted = list(registered) if accessions is None else accessions
        unknown = [a for a in wanted if a not in registered]
        if unknown:
            raise ConfigError(
                f"unknown accession(s) in this sandbox: {', '.join(unknown)}",
                "List them with `ghga-transfer sandbox ls --state DIR`",
            )
        if not wanted:
            raise ConfigError(
                "the sandbox has no accession to download yet",
                "Upload files or register some with `ghga-transfer sandbox add`",
            )
        package = _package("download", user_public_key)
        package["files"] = {a: registered[a]["extension"] for a in wanted}
        return _add_package(state, user_public_key, package)
