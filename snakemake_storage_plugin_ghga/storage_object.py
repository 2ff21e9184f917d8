"""`StorageObject`: one `ghga://` query, adapted onto the provider's catalog.

Design decisions (documented for users in docs/further.md):

- mtime. Archive files are immutable, and neither the work package nor the upload
  box reports a timestamp that Snakemake could compare. Both kinds report the
  constant `ARCHIVE_MTIME` (0), never "now": an input is never newer than an
  output (no reruns because the archive "changed"; an existing local copy is
  reused), and a job whose outputs are uploads is not re-run because a local
  input is newer. All other rerun triggers (code, params, input set, software
  environment, --forcerun) still apply.
- remove(). Snakemake removes a job's existing outputs before re-running it,
  and the outputs of a failed job. An upload that is still in the box can be
  deleted (like `ubox rm`), so `remove()` deletes it and the re-run uploads the
  new version; if the box no longer allows that (locked or archived), the
  engine's refusal surfaces as a `WorkflowError`. An upload whose decrypted
  size and SHA-256 equal the local copy's is kept: it is whole, and a failed
  job's cleanup must not destroy it. Archive files (`ghga://<accession>`) are
  never removed: that raises a `WorkflowError` saying why.
- store(). Idempotent: an alias already in the box with the local file's
  content counts as stored, without sending anything.
- Direction. Accessions are read-only (store raises), uploads write-only
  (retrieve raises: a box cannot be downloaded from).
- Concurrency. Snakemake calls the synchronous methods on its event loop, one
  file after another. The `managed_*` wrappers that may wait on the network
  (retrieve, store, size, checksum, local footprint) run them in threads
  instead, so several files move at once (and files the archive is staging are
  waited for together) while the client's shared executor bounds the parts in
  flight.
- Retries are the engine's (transient errors only); the interface's blanket
  `retry_decorator` is not used.
"""

import asyncio
import functools
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_storage_plugins.common import Operation
from snakemake_interface_storage_plugins.io import IOCacheStorageInterface, Mtime
from snakemake_interface_storage_plugins.storage_object import (
    StorageObjectGlob,
    StorageObjectRead,
    StorageObjectWrite,
)

from snakemake_storage_plugin_ghga.query import (
    SCHEME,
    UPLOAD_PREFIX,
    GhgaQuery,
    has_wildcards,
    parse_query,
)

try:
    from snakemake_interface_storage_plugins.exceptions import (
        FileOrDirectoryNotFoundError,
    )
except ImportError:  # interface < 4.3 has no such module; we support >= 4.1

    class FileOrDirectoryNotFoundError(WorkflowError):  # type: ignore[no-redef]
        """Stand-in for the interface's exception (same constructor)."""

        def __init__(self, local_path: Path, query: str | None = None) -> None:
            self.query = query
            self.local_path = local_path
            super().__init__(
                f"Storage object {query} not found in storage "
                f"(local path: {local_path!s})."
            )


if TYPE_CHECKING:
    from snakemake_storage_plugin_ghga.catalog import RemoteCatalog
    from snakemake_storage_plugin_ghga.provider import StorageProvider

__all__ = ["ARCHIVE_MTIME", "StorageObject", "safe_extension"]

ARCHIVE_MTIME = 0.0
_T = TypeVar("_T")
_EXTENSION_RE = re.compile(r"(\.[A-Za-z0-9_-]{1,16}){1,4}")


def safe_extension(extension: str | None) -> str:
    """Return the work package's extension if it is a plain one, else ""."""
    if extension and _EXTENSION_RE.fullmatch(extension):
        return extension
    return ""


class StorageObject(StorageObjectRead, StorageObjectWrite, StorageObjectGlob):
    """A GHGA file: an accession (input) or an upload alias (output)."""

    provider: "StorageProvider"

    @functools.cached_property
    def parsed(self) -> GhgaQuery:
        """The query's kind and accession or alias.

        Parsed on first use, not in `__post_init__`: Snakemake builds the object
        for a query with filled-in wildcards *before* it validates it, and only
        reports an invalid query nicely if creating the object did not raise.

        Raises:
            WorkflowError: the query is invalid (with the reason).
        """
        try:
            return parse_query(self.query)
        except ValueError as err:
            raise WorkflowError(str(err)) from err

    @property
    def catalog(self) -> "RemoteCatalog":
        """The provider's shared, cached view of the work packages."""
        return self.provider.catalog

    def local_suffix(self) -> str:
        """Return `<accession><extension>` or `upload/<alias>`.

        The extension comes from the work package listing (one call per provider);
        a query that still has wildcards, or an accession not in the package,
        gets none.
        """
        name = self.parsed.name
        if self.parsed.is_upload:
            return UPLOAD_PREFIX + name
        if has_wildcards(name):
            return name
        return name + safe_extension(self.catalog.extension_of(name))

    def get_inventory_parent(self) -> str | None:
        """Return the cache key under which one listing covers this object."""
        if self.parsed.is_upload:
            return str(self.provider.local_prefix / UPLOAD_PREFIX.rstrip("/"))
        return str(self.provider.local_prefix)

    async def inventory(self, cache: IOCacheStorageInterface) -> None:
        """Fill Snakemake's cache from one listing (work package or upload box)."""
        parent = self.get_inventory_parent()
        if parent is None or parent in cache.exists_in_storage:
            return
        entries = await asyncio.to_thread(self._listing_sizes)
        for suffix, size in entries.items():
            key = self.cache_key(suffix)
            cache.exists_in_storage[key] = True
            cache.mtime[key] = Mtime(storage=ARCHIVE_MTIME)
            if size is not None:
                cache.size[key] = size
        cache.exists_in_storage[parent] = True

    def _listing_sizes(self) -> dict[str, int | None]:
        if self.parsed.is_upload:
            return {
                UPLOAD_PREFIX + alias: entry.decrypted_size
                for alias, entry in self.catalog.uploads().items()
            }
        files = self.catalog.work_package_files()
        return {acc + safe_extension(ext): None for acc, ext in files.items()}

    def cleanup(self) -> None:
        """Nothing to clean: the client removes its own temporary files."""

    def exists(self) -> bool:
        """Return True if the accession is in the package or the alias in the box."""
        if self.parsed.is_upload:
            return self.catalog.upload_entry(self.parsed.name) is not None
        return self.parsed.name in self.catalog.work_package_files()

    def mtime(self) -> float:
        """Return the constant `ARCHIVE_MTIME`; see the module docstring."""
        return ARCHIVE_MTIME

    def size(self) -> int:
        """Return the decrypted size in bytes."""
        if self.parsed.is_upload:
            entry = self.catalog.upload_entry(self.parsed.name)
            if entry is None:
                raise WorkflowError(f"{self.print_query} is not in the upload box")
            return entry.decrypted_size
        return self.catalog.download_details(self.parsed.name).plain_size

    def checksum(self) -> str | None:
        """Return `sha256:<hex>` of the decrypted content when GHGA reports it."""
        if self.parsed.is_upload:
            entry = self.catalog.upload_entry(self.parsed.name)
            if entry is None or not entry.sha256:
                return None
            return f"sha256:{entry.sha256}"
        sha256 = self.catalog.download_details(self.parsed.name).sha256
        return None if sha256 is None else f"sha256:{sha256}"

    def local_footprint(self) -> int:
        """Return the decrypted size: what the local copy will occupy."""
        return self.size()

    def retrieve_object(self) -> None:
        """Download, decrypt and verify the file into `local_path()`."""
        if self.parsed.is_upload:
            raise WorkflowError(
                f"{self.print_query} is an upload: files in an upload box cannot be "
                "downloaded; read the local file your rule produced, or use the "
                "archive accession once the file is released"
            )
        self.catalog.download(self.parsed.name, self.local_path())

    def store_object(self) -> None:
        """Encrypt and upload `local_path()` under the alias."""
        if not self.parsed.is_upload:
            raise WorkflowError(
                f"{self.print_query} is an archive file and read-only; write "
                f"outputs as {SCHEME}{UPLOAD_PREFIX}<alias>"
            )
        self.catalog.upload(self.local_path(), self.parsed.name)

    def remove(self) -> None:
        """Delete the upload from the box; archive files cannot be removed."""
        if not self.parsed.is_upload:
            raise WorkflowError(
                f"{self.print_query} is an archive file: archive files are immutable "
                "and cannot be removed or replaced"
            )
        local = self.local_path()
        if not self.catalog.remove_upload(
            self.parsed.name, local if local.is_file() else None
        ):
            self.provider.logger.info(
                "kept %s: the upload box holds exactly the local file %s",
                self.print_query,
                local,
            )

    def list_candidate_matches(self) -> list[str]:
        """Return the concrete queries `glob_wildcards()` can match against."""
        if self.parsed.is_upload:
            return [SCHEME + UPLOAD_PREFIX + a for a in self.catalog.uploads()]
        return [SCHEME + acc for acc in self.catalog.work_package_files()]

    async def managed_retrieve(self) -> None:
        """Retrieve in a worker thread, so that several files download at once."""
        try:
            await self.wait_for_free_space()  # sizes via our threaded footprint
            self.local_path().parent.mkdir(parents=True, exist_ok=True)
            async with self._rate_limiter(Operation.RETRIEVE):
                await asyncio.to_thread(self.retrieve_object)
        except Exception as err:
            self._remove_partial_local_copy()
            raise WorkflowError(
                f"Failed to retrieve storage object from {self.print_query}", err
            ) from err

    async def managed_store(self) -> None:
        """Store in a worker thread, so that several files upload at once."""
        try:
            async with self._rate_limiter(Operation.STORE):
                await asyncio.to_thread(self.store_object)
        except Exception as err:
            raise WorkflowError(
                f"Failed to store output in storage {self.print_query}", err
            ) from err

    async def managed_size(self) -> int:
        """Ask for the size in a thread (it may wait while the file is staged)."""
        return await self._threaded(self.size, Operation.SIZE, "get size of")

    async def managed_checksum(self) -> str | None:
        """Ask for the checksum in a thread (see `managed_size`)."""
        return await self._threaded(self.checksum, Operation.SIZE, "get checksum of")

    async def managed_local_footprint(self) -> int:
        """Ask for the local footprint in a thread (see `managed_size`)."""
        return await self._threaded(
            self.local_footprint, Operation.SIZE, "get local footprint of"
        )

    async def _threaded(
        self, method: Callable[[], _T], operation: Operation, action: str
    ) -> _T:
        """Run a metadata method off the event loop, wrapped like the interface's."""
        try:
            async with self._rate_limiter(operation):
                return await asyncio.to_thread(method)
        except Exception as err:
            if not isinstance(err, FileOrDirectoryNotFoundError) and self.exists():
                raise WorkflowError(
                    f"Failed to {action} {self.print_query}", err
                ) from err
            raise FileOrDirectoryNotFoundError(
                self.local_path(), self.print_query
            ) from err

    def _remove_partial_local_copy(self) -> None:
        path = self.local_path()
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
