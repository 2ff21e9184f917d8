"""The plugin's settings dataclass: inert data that Snakemake turns into options.

Snakemake builds `--storage-ghga-*` options from this class for *every* command,
including `snakemake --help`, so nothing here validates or touches the disk or the
network: a settings class that raises breaks every Snakemake call. The provider
validates (see `snakemake_storage_plugin_ghga.checks`).

Parsing rules this module follows (docs: ../shared/reference/snakemake.md, §2.4):
- every non-str field sets `metadata["type"]`, otherwise tagged values stay strings;
- no `from __future__ import annotations` (it would turn annotations into strings);
- no field is `env_var`. Snakemake hands an `env_var` setting to a spawned job
  only as `export NAME='value'` on the job's command line (local executor: in
  the log and in `ps`), or not at all (SLURM: only the submitting process's own
  environment travels). Plain settings travel as `--storage-ghga-*` arguments,
  so an option reaches every job; the plugin reads the matching
  `SNAKEMAKE_STORAGE_GHGA_*` variables itself (`environment.py`), so variables
  keep working and reach jobs through the inherited environment;
- the tokens are fields only so that a token on the command line is refused by
  name; their values come from the environment or a token file, read by the
  plugin (never by Snakemake, which would put them on a job's command line);
- no `parse_func` (it needs an `unparse_func` and breaks spawned jobs).

Must not import anything from `snakemake_ghga` beyond plain constants.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase

from snakemake_ghga.config import DEFAULT_WKVS_URL  # a stdlib-only leaf module

__all__ = ["DEFAULT_WKVS_URL", "StorageProviderSettings"]


_WHAT = {
    "download": "downloads (inputs `ghga://<accession>`)",
    "upload": "uploads (outputs `ghga://upload/<alias>`)",
}


def _token_field(direction: str) -> Any:
    """A token option: it exists only so that a token given as one is refused."""
    help_text = (
        f"Do not use: refused. The work-package token for {_WHAT[direction]} is "
        "secret and every user of the machine can read command lines: set the "
        f"environment variable SNAKEMAKE_STORAGE_GHGA_{direction.upper()}_TOKEN or "
        f"use --storage-ghga-{direction}-token-file."
    )
    return field(default=None, repr=False, metadata={"help": help_text, "type": str})


def _token_file_field(direction: str) -> Any:
    """A token file option (the path is no secret; the file's content is)."""
    help_text = (
        f"File holding the work-package token for {_WHAT[direction]} "
        "(`<work package id>:<token>` as the GHGA Data Portal shows it), readable "
        "by you only (mode 0600 or 0400); instead of the environment variable "
        f"SNAKEMAKE_STORAGE_GHGA_{direction.upper()}_TOKEN. On a cluster, put it "
        "where the jobs can read it."
    )
    return field(default=None, metadata={"help": help_text, "type": Path})


@dataclass
class StorageProviderSettings(StorageProviderSettingsBase):
    """Settings of the `ghga` storage provider (one instance per tag)."""

    wkvs_url: str | None = field(
        default=None,
        metadata={
            "help": "URL of the GHGA well-known-values service, which names the "
            "other GHGA APIs and the Data Hub keys (or the environment variable "
            "SNAKEMAKE_STORAGE_GHGA_WKVS_URL; default "
            f"{DEFAULT_WKVS_URL}).",
            "type": str,
        },
    )
    my_public_key: Path | None = field(
        default=None,
        metadata={
            "help": "Your Crypt4GH public key file: the key you registered with the "
            "work package (or SNAKEMAKE_STORAGE_GHGA_MY_PUBLIC_KEY). Required.",
            "type": Path,
        },
    )
    my_private_key: Path | None = field(
        default=None,
        metadata={
            "help": "Your Crypt4GH private key file. If it is encrypted, put the "
            "passphrase in the environment variable C4GH_PASSPHRASE (or "
            "SNAKEMAKE_STORAGE_GHGA_MY_PRIVATE_KEY). Required.",
            "type": Path,
        },
    )
    download_token: str | None = _token_field("download")
    download_token_file: Path | None = _token_file_field("download")  # noqa: RUF009 (a field())
    upload_token: str | None = _token_field("upload")
    upload_token_file: Path | None = _token_file_field("upload")  # noqa: RUF009 (a field())
    ghga_public_key: Path | None = field(
        default=None,
        metadata={
            "help": "Optional pin: a Crypt4GH public key file that the Data Hub key "
            "announced by the well-known-values service must equal (or "
            "SNAKEMAKE_STORAGE_GHGA_GHGA_PUBLIC_KEY).",
            "type": Path,
        },
    )
    part_size: int | None = field(
        default=None,
        metadata={
            "help": "Part size in MiB: the unit of each request, retry and resume "
            "(5 to 5120; default: chosen from each file's size, 5 to 64). Parts "
            "are streamed, so memory does not grow with it.",
            "type": int,
        },
    )
    max_workers: int | None = field(
        default=None,
        metadata={
            "help": "Parts transferred in parallel, shared by all files of this "
            "provider and direction (1 to 64; default: adapted to the network, 4 "
            "to 24). Memory is about 2 MiB per worker.",
            "type": int,
        },
    )
    tmp_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Directory for the encrypted temporary copy and the resume "
            "journal of each upload (default: .snakemake/storage-ghga-uploads in "
            "the working directory, so that a job retried on another node of a "
            "cluster with a shared file system resumes). It needs free space for "
            "the largest output.",
            "type": Path,
        },
    )
