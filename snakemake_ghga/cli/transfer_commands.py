"""`ghga-transfer upload / download / ls / rm`: one line per file, a summary.

In the CLI: parses arguments, builds a ``GhgaClient``, prints results. Uploads
and downloads print each file's result line as soon as that file is done,
then the summary; ``--receipt FILE`` also writes every file's result as JSON
(atomically, also when some files failed). Exit 0 only if every file
succeeded (skipped files count as success), 1 otherwise; configuration
errors raise ``ConfigError`` (exit 2 in ``cli.main``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import (
    DEFAULT_WKVS_URL,
    MiB,
    TransferConfig,
    require_https,
)
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import ConfigError, GhgaError, LocalFileError
from snakemake_ghga.ghga.token import read_token_text
from snakemake_ghga.progress import (
    BarProgress,
    LineProgress,
    NullProgress,
    ProgressListener,
)
from snakemake_ghga.redact import redact_text

from .crypt_commands import add_key_options

if TYPE_CHECKING:  # the client pulls in requests: import it only to run
    from snakemake_ghga.client import GhgaClient
    from snakemake_ghga.transfer.context import DownloadResult, UploadResult
    from snakemake_ghga.transfer.upload import UploadDecision

__all__ = ["parse_tsv", "register"]

logger = logging.getLogger(__name__)
_HEADER_WORDS = frozenset({"path", "file", "file_path", "filepath", "filename"})


class _HasStatus(Protocol):
    @property
    def status(self) -> str:
        """uploaded/downloaded, skipped or failed."""


_Result = TypeVar("_Result", bound=_HasStatus)


def _add_shared(parser: argparse.ArgumentParser) -> None:
    add_key_options(parser)
    parser.add_argument(
        "--wkvs-url",
        default=os.environ.get("GHGA_WKVS_URL", DEFAULT_WKVS_URL),
        help="GHGA well-known values service (env GHGA_WKVS_URL; default "
        f"{DEFAULT_WKVS_URL})",
    )
    parser.add_argument(
        "--ghga-public-key",
        type=Path,
        default=_env_path("GHGA_PUBLIC_KEY"),
        help="pin the Data Hub public key (env GHGA_PUBLIC_KEY); uploads are "
        "refused if the well-known key differs",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding the work package token (else env "
        "GHGA_WORK_PACKAGE_TOKEN, else a prompt)",
    )
    parser.add_argument(
        "--part-size",
        type=int,
        metavar="MIB",
        help="part size in MiB (5..5120; default: from each file's size, 5 to 64 MiB)",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        help="parts in flight for all files (default: adapted to the network, "
        "up to 24)",
    )
    parser.add_argument(
        "--max-files",
        type=int,
        help="files transferred at the same time (default: 5 uploads, the "
        "box's limit, or 16 downloads)",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        help="where your private resume state (ghga-transfer-UID/: encrypted "
        "upload temp files, upload journals, locks) goes (default: system temp "
        "dir; tmpfs such as /dev/shm is fastest)",
    )
    parser.add_argument(
        "--quiet",
        dest="sub_quiet",
        action="store_true",
        help="print only errors and the summary",
    )


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the upload, download, ls and rm commands."""
    up = subparsers.add_parser("upload", help="encrypt and upload files to your box")
    up.add_argument("files", nargs="*", type=Path, metavar="FILE")
    up.add_argument("--alias", help="alias of the single FILE (default: its name)")
    up.add_argument("--tsv", type=Path, help="PATH<TAB>ALIAS lines instead of FILEs")
    up.add_argument(
        "--overwrite", action="store_true", help="replace aliases already in the box"
    )
    up.add_argument("--dry-run", action="store_true", help="print the plan only")
    up.add_argument(
        "--receipt",
        type=Path,
        metavar="FILE",
        help="write each file's result (alias, file id, state, sizes, checksums, "
        "error) as JSON to FILE, also when some files fail",
    )
    _add_shared(up)
    up.set_defaults(handler=run_upload)
    down = subparsers.add_parser("download", help="download and decrypt files")
    down.add_argument(
        "accessions",
        nargs="*",
        metavar="ACCESSION",
        help="default: every file of the work package",
    )
    down.add_argument("--output-dir", type=Path, required=True)
    down.add_argument(
        "--overwrite",
        action="store_true",
        help="replace complete outputs already there",
    )
    down.add_argument(
        "--keep-encrypted",
        action="store_true",
        help="write ACCESSION.ext.c4gh instead of plaintext",
    )
    down.add_argument(
        "--allow-unverified",
        action="store_true",
        help="also download files the archive gives no SHA-256 for "
        "(reported as not verified)",
    )
    _add_shared(down)
    down.set_defaults(handler=run_download)
    ls = subparsers.add_parser("ls", help="list the uploads in your box")
    _add_shared(ls)
    ls.set_defaults(handler=run_ls)
    rm = subparsers.add_parser("rm", help="delete an upload from your box")
    rm.add_argument("alias")
    _add_shared(rm)
    rm.set_defaults(handler=run_rm)


# -- building the client ----------------------------------------------------


def _prompt(message: str) -> str:
    """Read the token like the passphrase: without echo on a terminal."""
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            return getpass.getpass(message)
        return input(message)
    except EOFError:
        raise ConfigError(
            "no work package token on standard input",
            "Set GHGA_WORK_PACKAGE_TOKEN or pass --token-file",
        ) from None


def _progress(args: argparse.Namespace) -> ProgressListener:
    if args.quiet or args.sub_quiet:
        return NullProgress()
    if sys.stderr.isatty():
        return BarProgress(sys.stderr)
    return LineProgress(sys.stderr)


def _config(args: argparse.Namespace) -> TransferConfig:
    return TransferConfig(
        part_size_bytes=None if args.part_size is None else args.part_size * MiB,
        max_workers=args.max_workers,
        max_files_in_flight=args.max_files,
        tmp_dir=args.tmp_dir,
        allow_unverified=getattr(args, "allow_unverified", False),
    )


def build_client(
    args: argparse.Namespace, progress: ProgressListener | None = None
) -> GhgaClient:
    """Load keys, read the token and return a client for this run."""
    require_https(args.wkvs_url, "--wkvs-url")  # before the token is read
    config = _config(args)
    secret = keys.load_private_key(args.my_private_key)
    public = keys.load_public_key(args.my_public_key)
    keys.check_key_pair(secret, public, args.my_public_key)
    pinned = (
        keys.load_public_key(args.ghga_public_key) if args.ghga_public_key else None
    )
    token = read_token_text(args.token_file, _prompt)
    from snakemake_ghga.client import GhgaClient

    return GhgaClient(
        wkvs_url=args.wkvs_url,
        token=token,
        my_secret_key=secret,
        my_public_key=public,
        ghga_public_key=pinned,
        config=config,
        progress=progress or _progress(args),
    )


# -- upload -------------------------------------------------------------------


def parse_tsv(path: Path) -> list[tuple[Path, str]]:
    """Read ``path<TAB>alias`` lines; a header line and blank lines are skipped.

    Raises:
        ConfigError: unreadable file or a line without a tab-separated alias.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    items: list[tuple[Path, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cols = [col.strip() for col in line.split("\t")]
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise ConfigError(
                f"{path} line {number}: expected PATH<TAB>ALIAS",
                "Separate the path and the alias with one tab",
            )
        if not items and (
            cols[0].lower() in _HEADER_WORDS or cols[1].lower() == "alias"
        ):
            continue
        items.append((Path(cols[0]), cols[1]))
    return items


def _upload_items(args: argparse.Namespace) -> list[tuple[Path, str]]:
    if args.tsv and args.files:
        raise ConfigError("give either FILEs or --tsv, not both")
    if args.alias and len(args.files) != 1:
        raise ConfigError("--alias needs exactly one FILE", "Use --tsv for many")
    items = (
        parse_tsv(args.tsv)
        if args.tsv
        else [(path, args.alias or path.name) for path in args.files]
    )
    if not items:
        raise ConfigError("nothing to upload", "Pass FILEs or --tsv FILE")
    missing = [str(path) for path, _ in items if not path.is_file()]
    if missing:
        raise ConfigError(
            f"input file(s) not found: {', '.join(missing)}",
            "Nothing was sent; fix the paths and retry",
        )
    return items  # the client refuses duplicates before it sends anything


def _upload_line(result: UploadResult) -> str:
    if result.status == "uploaded":
        return (
            f"uploaded {result.path} as {result.alias} (file id {result.file_id}, "
            f"{result.plain_size} bytes, SHA-256 {result.plain_sha256})"
        )
    return f"{result.status} {result.alias}: {result.error}"


def run_upload(args: argparse.Namespace) -> int:
    """Handle `ghga-transfer upload`: one line per file as it ends, a summary."""
    items = _upload_items(args)
    receipt: Path | None = None if args.dry_run else args.receipt
    if receipt is not None:
        _check_receipt_path(receipt)
    progress = _progress(args)
    lines = _ResultLines(_upload_line, progress)
    with build_client(args, progress) as client:
        if args.dry_run:
            return _print_plan(
                items, client.plan_upload(items, overwrite=args.overwrite)
            )
        results = client.upload(items, overwrite=args.overwrite, on_result=lines.report)
        if receipt is not None:
            _write_receipt(receipt, results, _box_states(client, results))
    return lines.summary("uploaded")


def _check_receipt_path(receipt: Path) -> None:
    """Fail before anything is sent if the receipt cannot be written."""
    parent = receipt.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create the receipt's directory {parent}: {err.strerror}",
            "Choose a writable --receipt path; nothing was sent",
        ) from None
    if receipt.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(
            f"cannot write the receipt {receipt}",
            "Choose a writable --receipt file path; nothing was sent",
        )


def _box_states(
    client: GhgaClient, results: list[UploadResult]
) -> dict[str, str | None]:
    """file id → state in the box now (one listing); empty if it failed."""
    if not any(r.file_id for r in results):
        return {}
    try:
        return {u.file_id: u.state for u in client.list_uploads()}
    except GhgaError as err:
        logger.warning("the receipt has no box states: %s", redact_text(str(err)))
        return {}


def _receipt_entry(result: UploadResult, states: dict[str, str | None]) -> Any:
    return {
        "path": str(result.path),
        "alias": result.alias,
        "status": result.status,
        "file_id": result.file_id,
        "state": states.get(result.file_id) if result.file_id else None,
        "plain_size": result.plain_size if result.file_id else None,
        "encrypted_size": result.encrypted_size if result.file_id else None,
        "plain_sha256": result.plain_sha256,
        "encrypted_md5": result.encrypted_md5,
        "error": result.error,
    }


def _write_receipt(
    path: Path, results: list[UploadResult], states: dict[str, str | None]
) -> None:
    """Write the receipt like every output: a 0600 temp file, then a rename."""
    body = {"files": [_receipt_entry(r, states) for r in results]}
    data = (json.dumps(body, indent=2) + "\n").encode()
    try:
        with crypt.private_output(path) as (fd, _):
            crypt.pwrite_all(fd, data, 0)
            os.fsync(fd)  # the record of what was uploaded must survive a crash
    except LocalFileError as err:
        raise ConfigError(
            err.message,
            "The uploads above are done; rerun with a writable --receipt path "
            "(finished files are then skipped)",
        ) from None


_PLAN_VERBS = {
    "upload": "would upload",
    "replace": "would replace",
    "resume": "would resume",
    "skip": "would skip",
    "refuse": "would fail",
}


def _print_plan(items: list[tuple[Path, str]], plan: list[UploadDecision]) -> int:
    """Print what the upload would do per file; exit 1 if a file would fail."""
    for (path, alias), decision in zip(items, plan, strict=True):
        verb = _PLAN_VERBS[decision.action]
        if decision.reason:
            print(f"{verb} {alias}: {decision.reason}")
        else:
            print(f"{verb} {alias} from {path} ({path.stat().st_size} bytes)")
    return 1 if any(d.action == "refuse" for d in plan) else 0


class _ResultLines(Generic[_Result]):
    """Prints each file's result line as soon as it ends; counts the statuses."""

    def __init__(
        self, line_of: Callable[[_Result], str], progress: ProgressListener
    ) -> None:
        self._line_of = line_of
        self._progress = progress
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()  # results come from worker threads

    def report(self, result: _Result) -> None:
        """Count the result and print its line (a failure's on stderr)."""
        line = self._line_of(result)
        stream = sys.stderr if result.status == "failed" else sys.stdout
        with self._lock:
            self._counts[result.status] = self._counts.get(result.status, 0) + 1
            if isinstance(self._progress, BarProgress):  # keep it clear of bars
                self._progress.write_line(line, stream)
            else:
                print(line, file=stream, flush=True)

    def summary(self, done_word: str) -> int:
        """Print the summary line and return the exit code."""
        counts = self._counts
        summary = ", ".join(
            f"{counts.get(word, 0)} {word}" for word in (done_word, "skipped", "failed")
        )
        print(f"summary: {summary}", flush=True)
        ok = counts.get(done_word, 0) + counts.get("skipped", 0)
        return 0 if ok == sum(counts.values()) else 1


# -- download, ls, rm -----------------------------------------------------------


def _download_line(result: DownloadResult) -> str:
    if result.status == "downloaded":
        checked = "SHA-256 verified" if result.sha256 else "NOT verified: no SHA-256"
        return (
            f"{result.accession} has been successfully downloaded to "
            f"{result.path} ({result.plain_size} bytes, {checked})"
        )
    return f"{result.status} {result.accession}: {result.error}"


def run_download(args: argparse.Namespace) -> int:
    """Handle `ghga-transfer download`."""
    progress = _progress(args)
    lines = _ResultLines(_download_line, progress)
    with build_client(args, progress) as client:
        client.download(
            args.accessions or None,
            args.output_dir,
            overwrite=args.overwrite,
            keep_encrypted=args.keep_encrypted,
            on_result=lines.report,
        )
    return lines.summary("downloaded")


def run_ls(args: argparse.Namespace) -> int:
    """Handle `ghga-transfer ls`: alias, size, state, file id."""
    with build_client(args) as client:
        uploads = client.list_uploads()
    rows = [("ALIAS", "SIZE", "STATE", "FILE ID")] + [
        (u.alias, str(u.decrypted_size), u.state, u.file_id)
        for u in sorted(uploads, key=lambda u: u.alias)
        if u.state != "cancelled"
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=False)
            )
            + "  "
            + row[3]
        )
    return 0


def run_rm(args: argparse.Namespace) -> int:
    """Handle `ghga-transfer rm ALIAS`."""
    with build_client(args) as client:
        client.remove(args.alias)
    print(f"removed {args.alias}")
    return 0
