"""GhgaClient: the one object the CLI and the Snakemake plugin use.

Top level: the only module that composes ``ghga.api``, ``transfer.engine``,
``transfer.upload`` and ``transfer.download``. One client per run: one
``requests.Session``, one ``TransferEngine`` (executor + connection pool) for all parts
of all files, and a pool of file threads that start files while others are still moving,
so many small files do not go one by one: 16 downloads at a time, and 5 uploads (the
box's limit of open uploads; the others wait for a slot with their create WOT already
fetched). ``max_files_in_flight`` fixes both.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import TransferConfig
from snakemake_ghga.crypt4gh.keys import encode_public_key_b64
from snakemake_ghga.errors import (
    ApiError,
    ConfigError,
    GhgaError,
    NotFoundError,
    TransferError,
)
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.ghga.models import (
    DrsObject,
    FileUpload,
    Staging,
    download_file_name,
    shown,
)
from snakemake_ghga.ghga.token import parse_token
from snakemake_ghga.progress import NullProgress, ProgressListener
from snakemake_ghga.redact import redact_text
from snakemake_ghga.transfer.context import (
    DownloadInfo,
    DownloadResult,
    RunContext,
    UploadResult,
)
from snakemake_ghga.transfer.download import FileDownloader
from snakemake_ghga.transfer.engine import TransferEngine
from snakemake_ghga.transfer.upload import LIVE_STATES, FileUploader, UploadDecision

__all__ = [
    "DownloadInfo",
    "DownloadResult",
    "GhgaClient",
    "UploadInfo",
    "UploadResult",
]

logger = logging.getLogger(__name__)
UploadInfo = FileUpload
_DEFAULT_CONFIG = TransferConfig()
_P = ParamSpec("_P")
_R = TypeVar("_R")


class GhgaClient:
    """Upload to and download from GHGA; a context manager (closes pools)."""

    def __init__(
        self,
        *,
        wkvs_url: str,
        token: str,
        my_secret_key: bytes,
        my_public_key: bytes,
        ghga_public_key: bytes | None = None,
        config: TransferConfig = _DEFAULT_CONFIG,
        progress: ProgressListener | None = None,
    ) -> None:
        self.config = config
        self.api = GhgaApi(
            wkvs_url,
            parse_token(token),
            my_secret_key,
            encode_public_key_b64(my_public_key),
            timeout_s=(config.connect_timeout_s, config.read_timeout_s),
            pool_size=config.worker_cap + config.download_files_in_flight,
            backoff_max_s=config.backoff_max_s,
        )
        self.engine = TransferEngine(config)
        self._ctx = RunContext(
            self.api,
            self.engine,
            config,
            my_secret_key,
            my_public_key,
            ghga_public_key,
            progress or NullProgress(),
        )
        self._files = ThreadPoolExecutor(
            max(config.upload_files_in_flight, config.download_files_in_flight),
            thread_name_prefix="ghga-file",
        )
        self._upload_slots = threading.BoundedSemaphore(config.upload_files_in_flight)

    def __enter__(self) -> "GhgaClient":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.stop()
        self.close()

    def stop(self) -> None:
        """Stop every part, retry wait and request at once (e.g. on Ctrl-C).

        Resume state is kept; the threads end within a block's transfer.
        """
        self.engine.stop()
        self.api.stop()

    def close(self, wait: bool = True) -> None:
        """Stop the threads and close every connection (``wait``: join them)."""
        self._files.shutdown(wait=wait, cancel_futures=True)
        self.engine.close(wait)
        self.api.close()

    # -- listing --------------------------------------------------------------

    def work_package_files(self) -> dict[str, str]:
        """Return accession → file extension of the work package (one call).

        Raises:
            AuthError: the token is for an upload work package.
        """
        package = self.api.work_package()
        package.require_download()
        return dict(package.files)

    def list_uploads(self) -> list[UploadInfo]:
        """Return the uploads in the box (alias, file id, state, sizes)."""
        return self.api.list_uploads()

    def remove(self, alias: str) -> None:
        """Delete the upload named ``alias`` from the box.

        Raises:
            NotFoundError: no upload with that alias (other than cancelled ones).
        """
        live = _live_by_alias(self.api.list_uploads())
        if alias not in live or live[alias].state == "cancelled":
            raise NotFoundError(
                f"no upload named '{alias}' in the box",
                "List the box with `ghga-transfer ls`",
            )
        self.api.delete_upload(live[alias].file_id)

    # -- upload ---------------------------------------------------------------

    def upload_file(
        self,
        path: Path,
        alias: str,
        *,
        overwrite: bool = False,
        replace_unfinished: bool = False,
    ) -> UploadResult:
        """Upload one file (skipped if the alias is in the box, unless overwrite).

        ``replace_unfinished``: replace an unfinished upload of the alias that
        has no resume state here (e.g. left by a job that died on another node)
        instead of refusing it.

        Raises:
            GhgaError: the upload failed.
        """
        uploader = self._uploader()
        return self._upload_one(
            uploader,
            Path(path),
            alias,
            overwrite,
            catch=False,
            replace=replace_unfinished,
        )

    def holds_same(self, path: Path, alias: str) -> bool:
        """Return True if the box holds a finished upload of ``alias`` whose
        decrypted size and SHA-256 equal those of the local file ``path``.

        One listing with checksums; the file is hashed only if the sizes match.
        """
        finished = [
            u
            for u in self.api.list_uploads(with_checksums=True)
            if u.alias == alias and u.state in LIVE_STATES and u.state != "init"
        ]
        if not finished or not Path(path).is_file():
            return False
        entry = finished[-1]
        if entry.decrypted_sha256 is None:
            return False
        if entry.decrypted_size != Path(path).stat().st_size:
            return False
        with Path(path).open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        return digest == entry.decrypted_sha256

    def upload(
        self,
        items: list[tuple[Path, str]],
        *,
        overwrite: bool = False,
        on_result: Callable[[UploadResult], None] | None = None,
    ) -> list[UploadResult]:
        """Upload several files in parallel, listing the box once.

        One result per item, in order; ``on_result`` also gets each result as
        soon as its file ends (from worker threads: it must be thread-safe).

        Raises:
            ConfigError: duplicate paths or aliases (nothing is sent).
        """
        _check_unique(items)
        uploader = self._uploader()
        futures = [
            self._submit_reported(
                on_result or _ignore,
                self._upload_one,
                uploader,
                Path(path),
                alias,
                overwrite,
            )
            for path, alias in items
        ]
        return [future.result() for future in futures]

    def plan_upload(
        self, items: list[tuple[Path, str]], *, overwrite: bool = False
    ) -> list[UploadDecision]:
        """Return what ``upload`` would do with each item, listing the box once.

        Raises:
            ConfigError: duplicate paths or aliases (nothing is sent).
        """
        _check_unique(items)
        uploader = self._uploader()
        return [
            uploader.preview(Path(path), alias, overwrite=overwrite)
            for path, alias in items
        ]

    def _uploader(self) -> FileUploader:
        uploader = FileUploader(self._ctx, _live_by_alias(self.api.list_uploads()))
        self._tell_round_trip()
        return uploader

    def _tell_round_trip(self) -> None:
        """A far path needs more parts in flight from the first one on."""
        self.engine.limiter.round_trip(self.api.round_trip_s)

    def _upload_one(
        self,
        uploader: FileUploader,
        path: Path,
        alias: str,
        overwrite: bool,
        catch: bool = True,
        replace: bool = False,
    ) -> UploadResult:
        progress = self._ctx.progress
        self._prefetch_create_token(uploader, path, alias, overwrite)
        try:
            with self._upload_slots:
                result = uploader.upload(
                    path, alias, overwrite=overwrite, replace_unfinished=replace
                )
        except GhgaError as err:
            message = redact_text(str(err))
            progress.file_finished(alias, False, message)
            if not catch:
                raise
            return UploadResult(path, alias, "failed", error=message)
        progress.file_finished(alias, True, result.status)
        return result

    def _prefetch_create_token(
        self, uploader: FileUploader, path: Path, alias: str, overwrite: bool
    ) -> None:
        """Fetch the create WOT while waiting for an upload slot, if one is needed."""
        try:
            action = uploader.preview(path, alias, overwrite=overwrite).action
        except GhgaError:
            return  # the upload itself reports it
        if action in ("upload", "replace"):
            self.api.prefetch_create_token(alias)

    def _submit_reported(
        self,
        report: Callable[[_R], None],
        transfer: Callable[_P, _R],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> "Future[_R]":
        """Run ``transfer`` on a file thread and ``report`` its result there.

        The report runs before the future resolves, so when the caller has
        every result, every report has run (a done-callback may run later).
        """

        def run() -> _R:
            result = transfer(*args, **kwargs)
            report(result)
            return result

        return self._files.submit(run)

    # -- download -------------------------------------------------------------

    def describe_download(self, accession: str) -> DownloadInfo:
        """Return sizes and checksum of a file, waiting while it is staged."""
        extension = self._extension(accession)
        for _, drs in self._staged([accession]):
            if isinstance(drs, GhgaError):
                raise drs
            return DownloadInfo(
                accession,
                extension,
                crypt.plain_size_of(drs.size),
                drs.size,
                drs.sha256,
            )
        raise TransferError(f"file {accession} was not staged")  # pragma: no cover

    def download_file(
        self, accession: str, destination: Path, *, keep_encrypted: bool = False
    ) -> DownloadResult:
        """Download one file to ``destination`` (plaintext unless keep_encrypted).

        Raises:
            GhgaError: the download failed.
        """
        self._extension(accession)
        for _, drs in self._staged([accession], fetching=True):
            if isinstance(drs, GhgaError):
                raise drs
            return self._download_one(drs, Path(destination), keep_encrypted, False)
        raise TransferError(f"file {accession} was not staged")  # pragma: no cover

    def download(
        self,
        accessions: list[str] | None,
        output_dir: Path,
        *,
        overwrite: bool = False,
        keep_encrypted: bool = False,
        on_result: Callable[[DownloadResult], None] | None = None,
    ) -> list[DownloadResult]:
        """Download files (default: all of the work package) into ``output_dir``.

        Staging is requested for every file at once; each download starts as
        soon as its file is ready. One result per accession, in order;
        ``on_result`` also gets each result as soon as it is known (from
        worker threads: the callback must be thread-safe).
        """
        report = on_result or _ignore
        files = self.work_package_files()
        wanted = list(accessions) if accessions else sorted(files)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        results: dict[str, DownloadResult | Future[DownloadResult]] = {}
        pending: dict[str, Path] = {}
        for accession in wanted:
            planned = self._plan_download(
                accession, files, Path(output_dir), overwrite, keep_encrypted, pending
            )
            results[accession] = planned
            if planned.status != "pending":
                report(planned)
        for accession, drs in self._staged(list(pending), fetching=True):
            if isinstance(drs, GhgaError):
                failed = self._failed(accession, pending[accession], drs)
                results[accession] = failed
                report(failed)
                continue
            results[accession] = self._submit_reported(
                report,
                self._download_one,
                drs,
                pending[accession],
                keep_encrypted,
                True,
            )
        return [
            r if isinstance(r, DownloadResult) else r.result()
            for r in (results[a] for a in wanted)
        ]

    def _plan_download(
        self,
        accession: str,
        files: dict[str, str],
        output_dir: Path,
        overwrite: bool,
        keep: bool,
        pending: dict[str, Path],
    ) -> DownloadResult:
        if accession not in files:
            error = NotFoundError(
                f"{accession} is not in this work package",
                "Check the accession or the token",
            )
            return self._failed(accession, output_dir / accession, error)
        try:
            destination = _inside(output_dir, files[accession], accession, keep)
        except ApiError as err:
            return self._failed(shown(accession), output_dir, err)
        if destination.exists() and not overwrite:
            return DownloadResult(
                accession,
                destination,
                "skipped",
                error="already there (use --overwrite to replace)",
            )
        pending[accession] = destination
        return DownloadResult(accession, destination, "pending")

    def _failed(self, accession: str, path: Path, err: GhgaError) -> DownloadResult:
        message = redact_text(str(err))
        self._ctx.progress.file_finished(accession, False, message)
        return DownloadResult(accession, path, "failed", error=message)

    def _download_one(
        self, drs: DrsObject, destination: Path, keep: bool, catch: bool
    ) -> DownloadResult:
        self._tell_round_trip()
        try:
            result = FileDownloader(self._ctx).download(
                drs, destination, keep_encrypted=keep
            )
        except GhgaError as err:
            failed = self._failed(drs.accession, destination, err)  # redacts
            if not catch:
                raise
            return failed
        self._ctx.progress.file_finished(drs.accession, True, result.status)
        return result

    def _extension(self, accession: str) -> str:
        files = self.work_package_files()
        if accession not in files:
            raise NotFoundError(
                f"{accession} is not in this work package",
                "Check the accession or the token",
            )
        return files[accession]

    def _staged(
        self, accessions: list[str], *, fetching: bool = False
    ) -> Iterator[tuple[str, DrsObject | GhgaError]]:
        """Yield each file as it becomes ready (or fails), polling all at once.

        The DRS requests of files that are due run concurrently, so many small
        files are not staged one request after the other. ``fetching``: the
        files will be downloaded, so each envelope is fetched beside the
        file's first DRS request rather than after it.
        """
        due = dict.fromkeys(accessions, 0.0)
        deadline = time.monotonic() + self.config.staging_timeout_s
        workers = self.config.download_files_in_flight
        with ThreadPoolExecutor(workers, thread_name_prefix="ghga-stage") as polls:
            while due:
                ready = [a for a, t in due.items() if t <= time.monotonic()]
                for accession in ready if fetching else []:
                    self.api.prefetch_envelope(accession)
                for accession, answer in zip(
                    ready, polls.map(self._ask_drs, ready), strict=True
                ):
                    if isinstance(answer, Staging):
                        due[accession] = time.monotonic() + answer.retry_after_s
                        continue
                    del due[accession]
                    yield accession, answer
                if due and time.monotonic() > deadline:
                    yield from self._staging_timeouts(due)
                if due:  # a server's Retry-After never outlasts the deadline
                    wake = min(*due.values(), deadline)
                    time.sleep(max(0.0, wake - time.monotonic()))

    def _staging_timeouts(
        self, due: dict[str, float]
    ) -> Iterator[tuple[str, GhgaError]]:
        for accession in list(due):
            del due[accession]
            yield (
                accession,
                TransferError(
                    f"{accession} was still being staged after "
                    f"{self.config.staging_timeout_s:.0f} s",
                    "Run the command again later",
                ),
            )

    def _ask_drs(self, accession: str) -> DrsObject | Staging | GhgaError:
        try:
            answer = self.api.drs_object(accession)
        except GhgaError as err:
            return err
        if isinstance(answer, Staging):
            self._ctx.progress.file_notice(
                accession, f"being staged; asking again in {answer.retry_after_s:.0f} s"
            )
        return answer


def _inside(output_dir: Path, extension: str, accession: str, keep: bool) -> Path:
    """The output path of ``accession``; it must lie directly in ``output_dir``.

    Raises:
        ApiError: the work package's accession or extension is no plain name.
    """
    name = download_file_name(accession, extension) + (".c4gh" if keep else "")
    destination = output_dir / name
    if destination.parent.resolve() != output_dir.resolve():  # pragma: no cover
        raise ApiError(f"{shown(name)} would be written outside {output_dir}")
    return destination


def _ignore(_result: object) -> None:
    """The default on_result: nothing to report to."""


def _live_by_alias(uploads: list[FileUpload]) -> dict[str, FileUpload]:
    """Map alias → upload, preferring live uploads over cancelled/failed ones."""
    by_alias: dict[str, FileUpload] = {}
    for upload in uploads:
        if upload.alias not in by_alias or upload.state in LIVE_STATES:
            by_alias[upload.alias] = upload
    return by_alias


def _check_unique(items: list[tuple[Path, str]]) -> None:
    for index, label in ((0, "path"), (1, "alias")):
        seen: set[str] = set()
        for item in items:
            value = str(Path(item[0]).resolve()) if index == 0 else item[1]
            if value in seen:
                raise ConfigError(
                    f"duplicate {label}: {item[index]}",
                    "Each file and each alias may appear only once",
                )
            seen.add(value)
