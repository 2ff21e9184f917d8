"""The plugin's settings dataclass: inert data that Snakemake turns into options.

Snakemake builds `--storage-ghga-*` options from this class for *every* command,
including `snakemake --help`, so nothing here validates or touches the disk or the
network: a settings class that raises breaks every Snakemake call. The provider
validates (see `snakemake_storage_plugin_ghga.checks`).

Parsing rules this module follows (docs: ../shared/reference/snakemake.md, §2.4):
- every non-str field sets `metadata["type"]`, otherwise tagged values stay strings;
- no `from __future__ import annotations` (it would turn annotations into strings);
- secrets are `env_var=True` (spawned jobs then get them through the environment,
  never on a command line) and `repr=False`;
- no `parse_func` (it needs an `unparse_func` and breaks spawned jobs).

Must not import anything from `snakemake_ghga` beyond plain constants.
"""

from dataclasses import dataclass, field
from pathlib import Path

from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase

from snakemake_ghga.config import DEFAULT_WKVS_URL  # a stdlib-only leaf module

__all__ = ["DEFAULT_WKVS_URL", "StorageProviderSettings"]


_TOKEN_HELP = (
    "Work-package access token for {what}, as the GHGA Data Portal shows it "
    "(`<work package id>:<token>`). Secret: set it only through the environment "
    "variable {env}; a value on the command line is refused, because every user "
    "on the machine can read command lines."
)


@dataclass
class StorageProviderSettings(StorageProviderSettingsBase):
    """Settings of the `ghga` storage provider (one instance per tag)."""

    wkvs_url: str | None = field(
        default=DEFAULT_WKVS_URL,
        metadata={
            "help": "URL of the GHGA well-known-values service, which names the "
            "other GHGA APIs and the Data Hub keys.",
            "env_var": True,
            "type": str,
        },
    )
    my_public_key: Path | None = field(
        default=None,
        metadata={
            "help": "Your Crypt4GH public key file: the key you registered with the "
            "work package. Required.",
            "env_var": True,
            "type": Path,
        },
    )
    my_private_key: Path | None = field(
        default=None,
        metadata={
            "help": "Your Crypt4GH private key file. If it is encrypted, put the "
            "passphrase in the environment variable C4GH_PASSPHRASE. Required.",
            "env_var": True,
            "type": Path,
        },
    )
    download_token: str | None = field(
        default=None,
        repr=False,
        metadata={
            "help": _TOKEN_HELP.format(
                what="downloads (inputs `ghga://<accession>`)",
                env="SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN",
            ),
            "env_var": True,
            "type": str,
        },
    )
    upload_token: str | None = field(
        default=None,
        repr=False,
        metadata={
            "help": _TOKEN_HELP.format(
                what="uploads (outputs `ghga://upload/<alias>`)",
                env="SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN",
            ),
            "env_var": True,
            "type": str,
        },
    )
    ghga_public_key: Path | None = field(
        default=None,
        metadata={
            "help": "Optional pin: a Crypt4GH public key file that the Data Hub key "
            "announced by the well-known-values service must equal.",
            "env_var": True,
            "type": Path,
        },
    )
    part_size: int | None = field(
        default=None,
        metadata={
            "help": "Part size in MiB: the unit of each request, retry and resume "
            "(5 to 5120; default: the engine's 64). Parts are streamed, so memory "
            "does not grow with it.",
            "type": int,
        },
    )
    max_workers: int | None = field(
        default=None,
        metadata={
            "help": "Parts transferred in parallel, shared by all files of this "
            "provider and direction (1 to 64; default: the engine's 4). Memory is "
            "about 2 MiB per worker.",
            "type": int,
        },
    )
    tmp_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Directory for the encrypted temporary copy of each upload "
            "(default: the system temporary directory). It needs free space for "
            "the largest output.",
            "type": Path,
        },
    )
