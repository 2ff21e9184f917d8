"""Validate the provider settings and turn them into what the client needs.

Runs in `StorageProvider.__post_init__`, i.e. only when a workflow uses the
plugin, never when Snakemake merely builds its command line. Every error names
the setting (option and environment variable) and the fix.

Imports the public names of `snakemake_ghga` (keys, config, errors) only.
"""

import dataclasses
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_ghga.config import (
    DEFAULT_WKVS_URL,
    HTTPS_HINT,
    MAX_PART_SIZE_BYTES,
    MIN_PART_SIZE_BYTES,
    MiB,
    TransferConfig,
    url_refusal,
)
from snakemake_ghga.crypt4gh.keys import (
    check_key_pair,
    load_private_key,
    load_public_key,
)
from snakemake_ghga.errors import GhgaError
from snakemake_storage_plugin_ghga.environment import (
    env_name,
    read_token_file,
    setting_from_env,
)
from snakemake_storage_plugin_ghga.messages import plugin_wording, workflow_errors
from snakemake_storage_plugin_ghga.settings import StorageProviderSettings

__all__ = [
    "DEFAULT_UPLOAD_STATE_DIR",
    "MAX_WORKERS_LIMIT",
    "ProviderSetup",
    "check_settings",
    "option_name",
    "with_environment",
]

MAX_WORKERS_LIMIT = 64
# Relative to the working directory, which is shared by the nodes of a cluster
# with a shared file system: a job retried on another node finds the journal.
DEFAULT_UPLOAD_STATE_DIR = Path(".snakemake", "storage-ghga-uploads")
_SECRET_FIELDS = ("download_token", "upload_token")
# Settings that may also come from SNAKEMAKE_STORAGE_GHGA_<NAME> (environment.py).
_ENV_FIELDS = ("wkvs_url", "my_public_key", "my_private_key", "ghga_public_key")


@dataclass(frozen=True, slots=True)
class ProviderSetup:
    """Validated settings: everything a `GhgaClient` is built from."""

    wkvs_url: str
    my_public_key: bytes
    my_secret_key: bytes = field(repr=False)
    download_token: str | None = field(repr=False)
    upload_token: str | None = field(repr=False)
    ghga_public_key: bytes | None
    config: TransferConfig


def option_name(name: str) -> str:
    """Return how users set a field: the option and, if any, the env variable."""
    option = "--storage-ghga-" + name.replace("_", "-")
    if name in _ENV_FIELDS:
        return f"{option} (or {env_name(name)})"
    return option


def check_settings(
    settings: StorageProviderSettings | None,
    argv: Sequence[str] | None = None,
    tag: str | None = None,
) -> ProviderSetup:
    """Validate settings; load the key pair.

    Args:
        settings: the provider's settings (None when nothing was configured).
        argv: the command line to scan for secrets (default: sys.argv).
        tag: the provider's tag, for tagged `SNAKEMAKE_STORAGE_GHGA_*` values.

    Raises:
        WorkflowError: a setting is missing or invalid; the message names it.
    """
    _refuse_secrets_in_argv(sys.argv if argv is None else argv)
    settings = with_environment(settings or StorageProviderSettings(), tag)
    wkvs_url = _check_wkvs_url(settings.wkvs_url)
    download_token = _token(settings, "download", tag)
    upload_token = _token(settings, "upload", tag)
    if not download_token and not upload_token and not _tagged_tokens_only(tag):
        raise WorkflowError(_NO_TOKEN)
    secret_key, public_key = _load_key_pair(settings)
    return ProviderSetup(
        wkvs_url=wkvs_url,
        my_public_key=public_key,
        my_secret_key=secret_key,
        download_token=download_token,
        upload_token=upload_token,
        ghga_public_key=_load_optional_public(settings.ghga_public_key),
        config=_transfer_config(settings),
    )


def with_environment(
    settings: StorageProviderSettings, tag: str | None
) -> StorageProviderSettings:
    """Fill unset settings from their `SNAKEMAKE_STORAGE_GHGA_*` variables."""
    changes: dict[str, Any] = {}
    for name in _ENV_FIELDS:
        if getattr(settings, name) is not None:
            continue
        value = setting_from_env(name, tag)
        if value is not None and name != "wkvs_url":
            changes[name] = Path(os.path.expandvars(value)).expanduser()
        elif value is not None:
            changes[name] = value
    if settings.wkvs_url is None and "wkvs_url" not in changes:
        changes["wkvs_url"] = DEFAULT_WKVS_URL
    return dataclasses.replace(settings, **changes) if changes else settings


_NO_TOKEN = (
    "no GHGA work-package token is set: set SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN "
    "(inputs ghga://<accession>) and/or SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN "
    "(outputs ghga://upload/…) to the token shown by the GHGA Data Portal, or "
    "name a token file with --storage-ghga-download-token-file / "
    "--storage-ghga-upload-token-file"
)


def _tagged_tokens_only(tag: str | None) -> bool:
    """True for the untagged twin Snakemake registers beside tagged providers.

    Its variables hold only tagged tokens; it is used only if the workflow
    names `storage.ghga(...)` untagged, and then fails on first use.
    """
    return tag is None and any(
        os.environ.get(env_name(f"{d}_token"), "").strip().startswith("[")
        for d in ("download", "upload")
    )


def _token(
    settings: StorageProviderSettings, direction: str, tag: str | None
) -> str | None:
    """Return the token: a file's if one is named, else the variable's.

    A value set programmatically (e.g. by the interface's test harness) is
    used as it is; on the command line it never gets this far.
    """
    given: str | None = getattr(settings, f"{direction}_token")
    if given:
        return given
    token_file: Path | None = getattr(settings, f"{direction}_token_file")
    if token_file is not None:
        option = option_name(f"{direction}_token_file")
        try:
            return read_token_file(Path(token_file), option)
        except ValueError as err:
            raise WorkflowError(str(err)) from None
    return setting_from_env(f"{direction}_token", tag)


def _refuse_secrets_in_argv(argv: Sequence[str]) -> None:
    for name in _SECRET_FIELDS:
        option = "--storage-ghga-" + name.replace("_", "-")
        if any(arg == option or arg.startswith(option + "=") for arg in argv):
            raise WorkflowError(
                f"{option} was given on the command line, where every user of "
                "this machine can read it: revoke that token in the GHGA Data "
                f"Portal and pass a new one only through the environment "
                f"variable SNAKEMAKE_STORAGE_GHGA_{name.upper()}"
            )


def _check_wkvs_url(url: str | None) -> str:
    where = option_name("wkvs_url")
    if not url:
        raise WorkflowError(f"{where} is empty: set it to the GHGA well-known URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WorkflowError(
            f"{where} is not an http(s) URL: {url!r}; use e.g. "
            "https://data.ghga.de/.well-known"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise WorkflowError(
            f"{where} must not contain credentials, a query or a fragment"
        )
    refusal = url_refusal(url)
    if refusal:
        raise WorkflowError(f"{where} {refusal}. {HTTPS_HINT}")
    return url.rstrip("/")


def _load_key_pair(settings: StorageProviderSettings) -> tuple[bytes, bytes]:
    public_path = _required_path(settings.my_public_key, "my_public_key")
    private_path = _required_path(settings.my_private_key, "my_private_key")
    with workflow_errors():
        public_key = load_public_key(public_path)
        secret_key = load_private_key(private_path)
        check_key_pair(secret_key, public_key, public_path)
    return secret_key, public_key


def _required_path(path: Path | None, name: str) -> Path:
    if path is None:
        raise WorkflowError(
            f"{option_name(name)} is not set: point it to your Crypt4GH key file "
            "(create a pair with `crypt4gh-keygen`)"
        )
    return _existing(Path(path), name)


def _existing(path: Path, name: str) -> Path:
    """Return the path; say which host lacks it (a cluster node may)."""
    if not os.path.lexists(path):
        where = path if path.is_absolute() else f"{path} (in {Path.cwd()})"
        raise WorkflowError(
            f"{option_name(name)}: {where} does not exist on host "
            f"{socket.gethostname()}; on a cluster, put the key where every node "
            "sees it (a shared file system) and give an absolute path"
        )
    return path


def _load_optional_public(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return load_public_key(_existing(Path(path), "ghga_public_key"))
    except GhgaError as err:
        message = plugin_wording(str(err))
        raise WorkflowError(f"{option_name('ghga_public_key')}: {message}") from err


def _transfer_config(settings: StorageProviderSettings) -> TransferConfig:
    part_size_mib = _int_in_range(
        settings.part_size,
        "part_size",
        MIN_PART_SIZE_BYTES // MiB,
        MAX_PART_SIZE_BYTES // MiB,
    )
    workers = _int_in_range(settings.max_workers, "max_workers", 1, MAX_WORKERS_LIMIT)
    if settings.tmp_dir is None:
        tmp_dir = Path.cwd() / DEFAULT_UPLOAD_STATE_DIR
        tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        tmp_dir = Path(settings.tmp_dir)
    if not tmp_dir.is_dir():
        raise WorkflowError(
            f"{option_name('tmp_dir')}: {tmp_dir} is not an existing directory; "
            "create it or choose another one"
        )
    return TransferConfig(
        part_size_bytes=None if part_size_mib is None else part_size_mib * MiB,
        max_workers=workers,
        tmp_dir=tmp_dir,
    )


def _int_in_range(value: int | None, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not low <= value <= high:
        raise WorkflowError(
            f"{option_name(name)} is {value!r}; use a whole number from {low} to {high}"
        )
    return value
