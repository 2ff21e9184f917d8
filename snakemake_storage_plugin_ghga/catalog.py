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
  removals, so `exists()` right after a store answers from the upload state.

Every `GhgaError` becomes a `WorkflowError` carrying the engine's message
(`messages.workflow_errors`), except an upload refused because its alias is
stuck unfinished in the box (`UnfinishedUploadError`): that gets the plugin's own
remedy.
"""

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_ghga.errors import UnfinishedUploadError
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
    def upload_file(self, path: Path, alias: str) -> UploadOutcome: ...
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

    def uploads(self) -> dict[str, UploadEntry]:
        """Return the completed uploads of the box, alias -> entry (cached)."""
        with self._lock:
            if self._uploads is None:
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
        """Encrypt and upload one file; afterwards the catalog lists it."""
        client = self.client("upload")
        with workflow_errors():
            try:
                result = client.upload_file(path, alias)
            except UnfinishedUploadError as err:
                raise WorkflowError(_blocked_message(path, alias)) from err
        _raise_unless_done(
            result,
            f"upload of {path} as {alias!r}",
            f"delete that upload (`ghga-transfer rm {alias}` with the same upload "
            "token) or choose another alias, then run again",
        )
        entry = UploadEntry(result.plain_size, result.plain_sha256)
        with self._lock:
            self.uploads()[alias] = entry

    def remove_upload(self, alias: str) -> None:
        """Delete an upload from the box; afterwards the catalog no longer lists it."""
        client = self.client("upload")
        with workflow_errors():
            client.remove(alias)
        with self._lock:
            self.uploads().pop(alias, None)


def _raise_unless_done(outcome: TransferOutcome, what: str, remedy: str) -> None:
    """Raise unless the client reports the file as transferred."""
    if outcome.status in _DONE_STATUSES:
        return
    reason = outcome.error or "no reason given"
    raise WorkflowError(f"{what} was {outcome.status}: {reason}; {remedy}")


def _blocked_message(path: Path, alias: str) -> str:
    """Explain an upload the engine refused because the alias is stuck in `init`.

    The engine resumes an unfinished upload only from its own local state and
    never replaces another one, which another run may still be writing; its
    hint then names a `ghga-transfer` option that the plugin does not have.
    """
    return (
        f"the upload of {path} as {alias!r} is blocked: the box holds an "
        f"unfinished upload of {alias!r} (state init, e.g. left by an "
        "interrupted run), which the plugin does not replace because another "
        "run may still be writing it; if none is, delete it with "
        f"`ghga-transfer rm {alias}` (same upload token) and run the workflow "
        "again"
    )


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
