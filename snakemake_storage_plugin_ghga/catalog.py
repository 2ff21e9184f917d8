"""What one provider knows about its work packages, cached and thread-safe.

One `RemoteCatalog` per provider instance (i.e. per settings tag). It holds at
most two `GhgaClient`s, created on first use: one for the download token, one for
the upload token. Each client has one executor, so the parts in flight of all
files of one direction are bounded by `max_workers` together.

Caching, so that Snakemake's many existence/size/mtime questions cost one
listing per provider instead of one request per file:
- the work package's file list (accession -> extension): fetched once;
- download details (decrypted size, sha256): fetched once per accession, when
  size or checksum is first asked (the download then asks the DCS once more,
  for a fresh object URL);
- the upload box listing: fetched once, then kept current by our own uploads and
  removals, so `exists()` right after a store answers from the upload state; an
  alias the cached listing lacks is looked up in a fresh listing (a job in another
  process, e.g. on a cluster node, may have stored it meanwhile).

Stores are idempotent, because Snakemake stores one output several times
(inside the job, in the job step and again in the main process, with a shared
file system): an alias already in the box with the local file's decrypted size
and SHA-256 counts as stored, and nothing is sent. Removals spare such an
upload too: Snakemake removes the outputs of a failed job "since they might be
corrupted", and an upload equal to the local file is not.

An unfinished upload of the alias (state `init`) without resume state here is
replaced: in a workflow only one job writes an output, so it was left by an
attempt that died (on a cluster, maybe on another node whose resume state is
out of reach); refusing it would block the alias until someone removes it.

Every `GhgaError` becomes a `WorkflowError` carrying the engine's message
(`messages.workflow_errors`).
"""

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_ghga.messages import workflow_errors

__all__ = [
    "COMPLETE_UPLOAD_STATES",
    "RemoteCatalog",
    "TransferClient",
    "UploadEntry",
]

logger = logging.getLogger(__name__)

# Upload states in which a file is complete in the box. `init` is an upload in
# progress (or orphaned by a crash); `failed` and `cancelled` are gone.
COMPLETE_UPLOAD_STATES = frozenset(
    {"inbox", "interrogated", "awaiting_archival", "archived"}
)


class DownloadDetails(Protocol):
    """The part of the client's `DownloadInfo` the plugin reads."""

    @property
    def plain_size(self) -> int: ...
    @property
    def sha256(self) -> str | None: ...


class UploadListing(Protocol):
    """The part of the client's `UploadInfo` the plugin reads."""

    @property
    def alias(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def decrypted_size(self) -> int: ...


class TransferOutcome(Protocol):
    """The part of the client's `UploadResult`/`DownloadResult` the plugin reads."""

    @property
    def status(self) -> str: ...
    @property
    def error(self) -> str | None: ...


class UploadOutcome(TransferOutcome, Protocol):
    """An `UploadResult`: also the decrypted size and sha256."""

    @property
    def plain_size(self) -> int: ...
    @property
    def plain_sha256(self) -> str | None: ...


class TransferClient(Protocol):
    """The subset of `snakemake_ghga.client.GhgaClient` the plugin uses."""

    def work_package_files(self) -> dict[str, str]: ...
    def describe_download(self, accession: str) -> DownloadDetails: ...
    def download_file(self, accession: str, destination: Path) -> TransferOutcome: ...
    def list_uploads(self) -> Sequence[UploadListing]: ...
    def upload_file(
        self, path: Path, alias: str, *, replace_unfinished: bool = ...
    ) -> UploadOutcome: ...
    def holds_same(self, path: Path, alias: str) -> bool: ...
    def remove(self, alias: str) -> None: ...
    def close(self, wait: bool = True) -> None: ...


class UploadEntry:
    """A completed upload as the plugin knows it (from the listing or a store)."""

    __slots__ = ("decrypted_size", "sha256")

    def __init__(self, decrypted_size: int, sha256: str | None = None) -> None:
        self.decrypted_size = decrypted_size
        self.sha256 = sha256


_DONE_STATUSES = frozenset({"downloaded", "uploaded"})

ClientFactory = Callable[[str], TransferClient]


class RemoteCatalog:
    """Cached knowledge of one provider's download work package and upload box."""

    def __init__(
        self,
        make_client: ClientFactory,
        download_token: str | None,
        upload_token: str | None,
    ) -> None:
        self._make_client = make_client
        self._tokens = {"download": download_token, "upload": upload_token}
        self._clients: dict[str, TransferClient] = {}
        self._lock = threading.RLock()
        self._files: dict[str, str] | None = None
        self._details: dict[str, DownloadDetails] = {}
        self._uploads: dict[str, UploadEntry] | None = None
        # Garbage collection may run this in any thread, even one that is still
        # starting up: it must not join threads (that deadlocked a test run).
        self._finalizer = weakref.finalize(self, _close_all, self._clients, False)

    def __repr__(self) -> str:
        return f"RemoteCatalog(clients={sorted(self._clients)})"

    def close(self) -> None:
        """Close the clients (connection pools and executors), joining their threads."""
        if self._finalizer.detach() is not None:
            _close_all(self._clients, True)

    def client(self, direction: str) -> TransferClient:
        """Return the client for "download" or "upload", creating it once.

        Raises:
            WorkflowError: the token for that direction is not set.
        """
        with self._lock:
            if direction not in self._clients:
                token = self._tokens[direction]
                if not token:
                    raise WorkflowError(_missing_token_message(direction))
                with workflow_errors():
                    self._clients[direction] = self._make_client(token)
            return self._clients[direction]

    def work_package_files(self) -> dict[str, str]:
        """Return accession -> extension of the download work package (cached)."""
        with self._lock:
            if self._files is None:
                client = self.client("download")
                with workflow_errors():
                    self._files = dict(client.work_package_files())
            return self._files

    def extension_of(self, accession: str) -> str | None:
        """Return the file extension of an accession, None if not in the package."""
        return self.work_package_files().get(accession)

    def download_details(self, accession: str) -> DownloadDetails:
        """Return the decrypted size and sha256 of an accession (cached)."""
        with self._lock:
            known = self._details.get(accession)
        if known is not None:
            return known
        with workflow_errors():
            details = self.client("download").describe_download(accession)
        with self._lock:
            return self._details.setdefault(accession, details)

    def download(self, accession: str, destination: Path) -> None:
        """Download and decrypt one file to `destination`."""
        client = self.client("download")
        with workflow_errors():
            outcome = client.download_file(accession, destination)
        _raise_unless_done(outcome, f"download of {accession}", "run again")

    def upload_entry(self, alias: str) -> UploadEntry | None:
        """Return the completed upload of ``alias``, listing the box again if the
        cached listing lacks it: a job (another process, maybe on another node)
        may have stored it since, and Snakemake asks after such jobs."""
        entry = self.uploads().get(alias)
        if entry is None:
            entry = self.uploads(refresh=True).get(alias)
        return entry

    def uploads(self, refresh: bool = False) -> dict[str, UploadEntry]:
        """Return the completed uploads of the box, alias -> entry (cached)."""
        with self._lock:
            if self._uploads is None or refresh:
                client = self.client("upload")
                with workflow_errors():
                    listing = client.list_uploads()
                self._uploads = {
                    item.alias: UploadEntry(item.decrypted_size)
                    for item in listing
                    if item.state in COMPLETE_UPLOAD_STATES
                }
            return self._uploads

    def upload(self, path: Path, alias: str) -> None:
        """Encrypt and upload one file; afterwards the catalog lists it.

        Succeeds without sending anything if the box already holds the same
        content under the alias (see the module docstring).
        """
        client = self.client("upload")
        with workflow_errors():
            result = client.upload_file(path, alias, replace_unfinished=True)
            if result.status == "skipped" and client.holds_same(path, alias):
                logger.info("%s is already in the upload box; nothing sent", alias)
                self._remember(alias, result)
                return
        _raise_unless_done(
            result,
            f"upload of {path} as {alias!r}",
            f"delete that upload (`ghga-transfer rm {alias}` with the same upload "
            "token) or choose another alias, then run again",
        )
        self._remember(alias, result)

    def _remember(self, alias: str, result: UploadOutcome) -> None:
        entry = UploadEntry(result.plain_size, result.plain_sha256)
        with self._lock:
            self.uploads()[alias] = entry

    def remove_upload(self, alias: str, local_copy: Path | None = None) -> bool:
        """Delete an upload from the box, unless it equals ``local_copy``.

        Returns:
            True if deleted; False if kept because it holds the local file's
            content (see the module docstring).
        """
        client = self.client("upload")
        with workflow_errors():
            if local_copy is not None and client.holds_same(local_copy, alias):
                return False
            client.remove(alias)
        with self._lock:
            self.uploads().pop(alias, None)
        return True


def _raise_unless_done(outcome: TransferOutcome, what: str, remedy: str) -> None:
    """Raise unless the client reports the file as transferred."""
    if outcome.status in _DONE_STATUSES:
        return
    reason = outcome.error or "no reason given"
    raise WorkflowError(f"{what} was {outcome.status}: {reason}; {remedy}")


def _missing_token_message(direction: str) -> str:
    what = (
        "reading ghga://<accession> inputs"
        if direction == "download"
        else "writing ghga://upload/<alias> outputs"
    )
    return (
        f"no {direction} token is set, which {what} needs: set the environment "
        f"variable SNAKEMAKE_STORAGE_GHGA_{direction.upper()}_TOKEN to the "
        f"{direction} work-package token from the GHGA Data Portal"
    )


def _close_all(clients: dict[str, TransferClient], wait: bool) -> None:
    for direction, client in list(clients.items()):
        try:
            client.close(wait)
        except Exception:  # closing at exit must not mask the run's outcome
            logger.debug("closing the %s client failed", direction, exc_info=True)
    clients.clear()
