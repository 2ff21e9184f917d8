"""Transfer settings shared by the CLI, the client and the Snakemake plugin.

A leaf module: imports only the stdlib and ``errors``.

Memory bound (beyond the interpreter and libraries, about 40 MB):

    memory ≈ workers × 2 × BUFFER_BYTES                 (part transfers)
           + upload files in flight × 8 × 2 MiB         (encryption pipelines)
           + download files in flight × 2 × BUFFER_BYTES (download hashing)

Part bodies are never held in memory: an upload part is streamed from the
Crypt4GH temp file in ``BUFFER_BYTES`` blocks, and a download part is read,
decrypted and written through two reused buffers of ``BUFFER_BYTES`` per
worker; the encryption of each file in flight owns at most 8 buffer slots
of 2 MiB (fewer for a small file), and the SHA-256 of each download reads
its output back through two more (smaller for a small file). So the part
size changes no term. ``workers`` is ``max_workers`` when given; otherwise
the engine adapts the parts in flight (``concurrency``) up to ``worker_cap``,
at most ``WORKER_CAP`` (24: 48 MiB) and fewer if ``MEMORY_BUDGET_BYTES``
leaves less room beside the files in flight. 16 downloads (32 MiB of
hashing buffers, far less for small files) and 24 workers stay within
150 MB; 5 uploads could hold 80 MiB of encryption slots, but a file's slots
fill only while its PUTs lag behind its encryption, and small files get
small slots.
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
    "DOWNLOAD_FILES_IN_FLIGHT",
    "HTTPS_HINT",
    "MAX_OPEN_UPLOADS",
    "MAX_PART_SIZE_BYTES",
    "MEMORY_BUDGET_BYTES",
    "MIN_PART_SIZE_BYTES",
    "WORKER_CAP",
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
WORKER_CAP = 24  # most parts in flight when the engine adapts them
MEMORY_BUDGET_BYTES = 100 * MiB  # beyond the interpreter: RSS within 150 MB
MAX_OPEN_UPLOADS = 5  # the UCS refuses a 6th unfinished upload per box (429)
DOWNLOAD_FILES_IN_FLIGHT = 16  # each costs a thread and two small buffers
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
            None (default): chosen per file from its size and ``worker_cap``
            (``parts.auto_part_size``).
        max_workers: parts in flight for all files (threads and pooled
            connections). None (default): the engine adapts it between 1 and
            ``worker_cap`` (``concurrency.ConcurrencyController``).
        max_files_in_flight: files transferred at the same time. None
            (default): 5 uploads (the box's limit of open uploads) and 16
            downloads.
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

    part_size_bytes: int | None = None
    max_workers: int | None = None
    max_files_in_flight: int | None = None
    tmp_dir: Path | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    staging_timeout_s: float = 3600.0
    allow_unverified: bool = False

    def __post_init__(self) -> None:
        size = self.part_size_bytes
        if size is not None and not MIN_PART_SIZE_BYTES <= size <= MAX_PART_SIZE_BYTES:
            raise ConfigError(
                f"part size {self.part_size_bytes} bytes is out of range",
                "Choose a part size between 5 MiB and 5 GiB, e.g. --part-size 64",
            )
        for name in ("max_workers", "max_files_in_flight", "max_attempts"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1", "Use a value >= 1")
        if self.tmp_dir is not None and not self.tmp_dir.is_dir():
            raise ConfigError(
                f"temp dir {self.tmp_dir} does not exist or is not a directory",
                "Create it or pass another --tmp-dir",
            )

    @property
    def worker_cap(self) -> int:
        """The most parts in flight: ``max_workers``, else what memory allows."""
        if self.max_workers is not None:
            return self.max_workers
        files = self.max_files_in_flight or DOWNLOAD_FILES_IN_FLIGHT
        per_worker = 2 * BUFFER_BYTES
        room = MEMORY_BUDGET_BYTES - files * 2 * BUFFER_BYTES
        return max(4, min(WORKER_CAP, room // per_worker))

    @property
    def upload_files_in_flight(self) -> int:
        """Files uploaded at the same time (never more than the box allows)."""
        return min(self.max_files_in_flight or MAX_OPEN_UPLOADS, MAX_OPEN_UPLOADS)

    @property
    def download_files_in_flight(self) -> int:
        """Files downloaded at the same time."""
        return self.max_files_in_flight or DOWNLOAD_FILES_IN_FLIGHT
