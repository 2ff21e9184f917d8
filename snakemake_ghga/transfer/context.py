"""RunContext: what every file of one run shares; and the result types.

In ``transfer``: imports ``ghga.api``, ``transfer.engine``, ``config``, ``errors``,
``progress``. The upload and download flows receive a ``RunContext`` instead of reaching
into ``GhgaClient``, so each flow can be tested with fakes.
"""

import base64
from dataclasses import dataclass, field
from pathlib import Path

from snakemake_ghga.config import TransferConfig
from snakemake_ghga.errors import ApiError, ConfigError
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.progress import ProgressListener
from snakemake_ghga.transfer.engine import TransferEngine

__all__ = ["DownloadInfo", "DownloadResult", "RunContext", "UploadResult"]


@dataclass(frozen=True, slots=True)
class UploadResult:
    """One file's upload: ``status`` is uploaded, skipped or failed."""

    path: Path
    alias: str
    status: str
    file_id: str | None = None
    plain_size: int = 0
    encrypted_size: int = 0
    plain_sha256: str | None = None
    encrypted_md5: str | None = None
    bytes_sent: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DownloadInfo:
    """What the archive says about a file before its download."""

    accession: str
    extension: str
    plain_size: int
    cipher_size: int
    sha256: str | None


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """One file's download: ``status`` is downloaded, skipped or failed."""

    accession: str
    path: Path
    status: str
    plain_size: int = 0
    sha256: str | None = None
    bytes_received: int = 0
    error: str | None = None


@dataclass
class RunContext:
    """Shared state of one run: API, engine, settings, keys and progress."""

    api: GhgaApi
    engine: TransferEngine
    config: TransferConfig
    my_secret_key: bytes = field(repr=False)
    my_public_key: bytes
    ghga_public_key: bytes | None
    progress: ProgressListener

    def hub_key(self, storage_alias: str) -> bytes:
        """Return the Data Hub key for ``storage_alias`` (pinned if configured).

        Raises:
            ApiError: the WKVS has no key for that storage.
            ConfigError: the pinned --ghga-public-key differs from the WKVS key.
        """
        keys = self.api.well_known().crypt4gh_public_keys
        if storage_alias not in keys:
            raise ApiError(
                f"the well-known values have no public key for storage "
                f"'{storage_alias}'",
                "Report this to GHGA; the upload cannot be encrypted",
            )
        try:
            announced = base64.b64decode(keys[storage_alias], validate=True)
        except ValueError:  # binascii.Error
            announced = b""
        if len(announced) != 32:
            raise ApiError(
                f"the well-known values' public key for storage '{storage_alias}' "
                "is not a base64 32-byte Crypt4GH key",
                "Report this to GHGA; the upload cannot be encrypted",
            )
        if self.ghga_public_key is not None and announced != self.ghga_public_key:
            raise ConfigError(
                f"the GHGA public key for storage '{storage_alias}' differs from "
                "the pinned --ghga-public-key",
                "Check --ghga-public-key / GHGA_PUBLIC_KEY, or drop it to trust "
                "the well-known values",
            )
        return self.ghga_public_key or announced
