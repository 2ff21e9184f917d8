"""Transfer settings shared by the CLI, the client and the Snakemake plugin.

A leaf module: imports only the stdlib and ``errors``.

Memory bound (beyond the interpreter and libraries, about 40 MB):

    memory ≈ max_workers × 2 × BUFFER_BYTES            (part transfers)
           + max_files_in_flight × 8 × 2 MiB            (encryption pipelines)
           + max_files_in_flight × 2 × BUFFER_BYTES     (download hashing)

Part bodies are never held in memory: an upload part is streamed from the
Crypt4GH temp file in ``BUFFER_BYTES`` blocks, and a download part is read,
decrypted and written through two reused buffers of ``BUFFER_BYTES`` per
worker; the encryption of each file in flight owns at most 8 buffer slots
of 2 MiB (fewer for a small file), and the SHA-256 of each download reads
its output back through two more. So the part size changes no term: with
the defaults the bound is about 80 MB (four files in flight), and the
measured peak RSS of one 2 GiB upload or download, interpreter included, is
55–60 MiB with 64 MiB and with 512 MiB parts.
"""

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from snakemake_ghga.errors import ConfigError

__all__ = [
    "BUFFER_BYTES",
    "DEFAULT_PART_SIZE_BYTES",
    "DEFAULT_WKVS_URL",
    "HTTPS_HINT",
    "MAX_PART_SIZE_BYTES",
    "MIN_PART_SIZE_BYTES",
    "MiB",
    "TransferConfig",
    "require_https",
    "url_refusal",
]

DEFAULT_WKVS_URL = "https://data.ghga.de/.well-known"
MiB = 1024 * 1024
DEFAULT_PART_SIZE_BYTES = 64 * MiB
MIN_PART_SIZE_BYTES = 5 * MiB
MAX_PART_SIZE_BYTES = 5 * 1024 * MiB
BUFFER_BYTES = 16 * 65_564  # 16 cipher segments, about 1 MiB
HTTPS_HINT = (
    "Use an https:// URL; plain http is accepted only for localhost, "
    "127.0.0.0/8 and ::1 (a local sandbox)"
)


def url_refusal(url: str) -> str | None:
    """Why GHGA traffic must not go to ``url``; None if it may.

    Only https, or plain http to a loopback host, where nobody else is on the
    path. Over plain http to another host, whoever is on the path reads the
    token and chooses the Data Hub key that uploads are encrypted to.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in ("http", "https"):
        return "is not an https URL"
    if parts.scheme == "http" and not _is_loopback(host):
        return (
            f"uses plain http for {host}, which would send the token unencrypted "
            "and let anyone on the network path choose the encryption key"
        )
    return None


def require_https(url: str, what: str) -> str:
    """Return ``url`` if ``url_refusal`` accepts it.

    Raises:
        ConfigError: naming ``what``, the URL and the fix.
    """
    refusal = url_refusal(url)
    if refusal:
        raise ConfigError(f"{what} {url} {refusal}", HTTPS_HINT)
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """How a run moves parts; every field has a safe default.

    Attributes:
        part_size_bytes: requested part size; rounded up to whole Crypt4GH
            cipher segments and raised when a file would need > 10,000 parts.
        max_workers: threads (and pooled connections) moving parts, all files.
        max_files_in_flight: files transferred at the same time.
        tmp_dir: where the private state dir ``ghga-transfer-<uid>/`` goes
            (upload temp files and journals, locks; None: system temp).
        connect_timeout_s: TCP/TLS connect timeout per request.
        read_timeout_s: timeout for each socket read.
        max_attempts: attempts per part before the file fails.
        backoff_base_s: first retry delay; doubles per attempt, full jitter.
        backoff_max_s: cap of one retry delay.
        staging_timeout_s: how long to wait for files the archive is staging.
        allow_unverified: download a file the archive gives no SHA-256 for
            (default: such a file fails, since nothing else shows it is whole).
    """

    part_size_bytes: int = DEFAULT_PART_SIZE_BYTES
    max_workers: int = 4
    max_files_in_flight: int = 4
    tmp_dir: Path | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    staging_timeout_s: float = 3600.0
    allow_unverified: bool = False

    def __post_init__(self) -> None:
        if not MIN_PART_SIZE_BYTES <= self.part_size_bytes <= MAX_PART_SIZE_BYTES:
            raise ConfigError(
                f"part size {self.part_size_bytes} bytes is out of range",
                "Choose a part size between 5 MiB and 5 GiB, e.g. --part-size 64",
            )
        for name in ("max_workers", "max_files_in_flight", "max_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1", "Use a value >= 1")
        if self.tmp_dir is not None and not self.tmp_dir.is_dir():
            raise ConfigError(
                f"temp dir {self.tmp_dir} does not exist or is not a directory",
                "Create it or pass another --tmp-dir",
            )
