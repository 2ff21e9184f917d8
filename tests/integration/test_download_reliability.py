"""Download failure modes against the sandbox: interruption keeps the resume
state, a full disk says so, corrupt segments are fetched again (also for
kept ciphertext), a URL that cannot be refreshed keeps the resume state, a
token of the wrong direction is refused, and urllib3's DEBUG lines carry no
signatures."""

import dataclasses
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import MiB
from snakemake_ghga.errors import (
    AuthError,
    DecryptionError,
    LocalFileError,
    PartFailedError,
)
from snakemake_ghga.sandbox import dcs, objecthttp
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer import download
from snakemake_ghga.transfer.engine import CORRUPT_ATTEMPTS, Cancelled, TransferEngine
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE, Part, download_part_size
from tests.conftest import KeyPair

from .conftest import PART, make_client, random_file

SIZE = 12 * MiB


class StopAfter:
    """A progress listener that stops the engine (as Ctrl-C does) mid-file."""

    def __init__(self, after_bytes: int) -> None:
        self.after_bytes = after_bytes
        self.seen = 0
        self.stop: Callable[[], None] = lambda: None

    def file_started(self, name: str, total_bytes: int) -> None:
        pass

    def file_progress(self, name: str, delta_bytes: int) -> None:
        self.seen += delta_bytes
        if self.seen >= self.after_bytes:
            self.stop()

    def file_notice(self, name: str, message: str) -> None:
        pass

    def file_finished(self, name: str, ok: bool, message: str) -> None:
        pass


def _client(sandbox: Sandbox, keys: KeyPair, token: str, **options: Any) -> GhgaClient:
    """``make_client`` with two workers unless told otherwise."""
    return make_client(sandbox, keys, token, **{"max_workers": 2, **options})


@pytest.fixture
def archived(sandbox: Sandbox, tmp_path: Path) -> tuple[Path, str]:
    source = random_file(tmp_path / "in", "data.bin", SIZE)
    return source, sandbox.add_file(source)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- 1. an interrupted download keeps its resume state --------------------------


def _download_stopped_in_part_2(
    sandbox: Sandbox, keys: KeyPair, token: str, accession: str, destination: Path
) -> None:
    """Download with one worker and stop (as Ctrl-C does) once part 1 is done."""
    progress = StopAfter(PART + 1)
    with _client(sandbox, keys, token, max_workers=1, progress=progress) as c:
        progress.stop = c.engine.stop
        with pytest.raises(Cancelled):
            c.download_file(accession, destination)


@pytest.fixture
def interrupted(
    sandbox: Sandbox, user_keys: KeyPair, archived: tuple[Path, str], tmp_path: Path
) -> tuple[str, Path]:
    """The token and destination of a download stopped once part 1 was done."""
    _, accession = archived
    token = sandbox.download_token(user_keys.public, [accession])
    destination = tmp_path / "out" / "data.bin"
    destination.parent.mkdir()
    _download_stopped_in_part_2(sandbox, user_keys, token, accession, destination)
    return token, destination


def test_stopped_download_keeps_part_file_and_journal_then_resumes(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    interrupted: tuple[str, Path],
) -> None:
    source, accession = archived
    token, destination = interrupted
    assert _leftovers(destination.parent) == [".data.bin.journal", ".data.bin.part"]
    assert not destination.exists()

    with _client(sandbox, user_keys, token) as c:
        result = c.download_file(accession, destination)
    assert result.status == "downloaded"
    assert destination.read_bytes() == source.read_bytes()
    assert 0 < result.bytes_received < crypt.encrypted_size(SIZE, 0)
    assert _leftovers(destination.parent) == ["data.bin"]


def test_resumed_download_starts_gets_before_hashing_finished_parts(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    interrupted: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, accession = archived
    token, destination = interrupted
    get_started = threading.Event()
    real_get, real_hash = TransferEngine.get_part, download._OrderedHasher._hash_part

    def get_part(self: TransferEngine, *args: Any) -> None:
        get_started.set()
        real_get(self, *args)

    hashed: list[tuple[int, bool]] = []  # (part, a GET had started by then)

    def hash_part(self: download._OrderedHasher, part: Part) -> None:
        hashed.append((part.number, get_started.wait(timeout=5)))
        real_hash(self, part)

    monkeypatch.setattr(TransferEngine, "get_part", get_part)
    monkeypatch.setattr(download._OrderedHasher, "_hash_part", hash_part)
    with _client(sandbox, user_keys, token) as c:
        result = c.download_file(accession, destination)
    assert hashed[0] == (1, True)
    assert [number for number, _ in hashed] == [1, 2, 3]  # in file order
    assert result.status == "downloaded"
    assert destination.read_bytes() == source.read_bytes()


def test_resumed_download_stopped_while_reading_back_stops_within_one_block(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    interrupted: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, accession = archived
    token, destination = interrupted
    real_plaintext = download._OrderedHasher._plaintext
    reads: list[int] = []

    def plaintext(self: download._OrderedHasher, offset: int, size: int) -> memoryview:
        reads.append(offset)
        c.engine.stop()  # Ctrl-C while part 1 is read back
        return real_plaintext(self, offset, size)

    monkeypatch.setattr(download._OrderedHasher, "_plaintext", plaintext)
    with _client(sandbox, user_keys, token) as c, pytest.raises(Cancelled):
        c.download_file(accession, destination)
    assert reads == [0]  # part 1 alone has 5 blocks
    assert _leftovers(destination.parent) == [".data.bin.journal", ".data.bin.part"]


# -- 2. a full disk is reported as such ------------------------------------------


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.pwrite into a `.part` file writes short past 1 MiB, as on a full disk."""
    real = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            return real(fd, data, offset)
        view = memoryview(data)[: max(0, MiB - offset)]
        return real(fd, view, offset) if len(view) else 0

    monkeypatch.setattr(os, "pwrite", pwrite)


def test_full_disk_says_no_space_and_leaves_nothing(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    tmp_path: Path,
    full_disk: None,
) -> None:
    _, accession = archived
    out = tmp_path / "out"
    out.mkdir()
    with _client(
        sandbox, user_keys, sandbox.download_token(user_keys.public, [accession])
    ) as c:
        with pytest.raises(LocalFileError) as caught:
            c.download_file(accession, out / "data.bin")
        [failed] = c.download([accession], out)
    assert os.strerror(errno.ENOSPC) in str(caught.value)
    assert "data.bin" in str(caught.value)
    assert failed.status == "failed"
    assert failed.error is not None and "No space left" in failed.error
    assert _leftovers(out) == []


# -- 3. corrupt ciphertext is fetched again, then refused -------------------------


class Corruptor:
    """Serves one flipped byte at object offset ``bad`` for ``times`` GETs."""

    def __init__(self, tmp: Path, bad: int, times: int | None) -> None:
        self.tmp, self.bad, self.times = tmp, bad, times
        self.lock = threading.Lock()
        self.corrupted = 0
        self.starts: list[int] = []  # first byte of every GET covering `bad`

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original: Callable[..., Any] = objecthttp._get_object

        def serve(store: Any, request: Any) -> Any:
            response = original(store, request)
            piece = response.file_slice
            if piece is None or not piece.offset <= self.bad < piece.offset + (
                piece.length
            ):
                return response
            with self.lock:
                self.starts.append(piece.offset)
                if self.times is not None and self.corrupted >= self.times:
                    return response
                self.corrupted += 1
                bad_copy = self._bad_copy(piece.path)
            return dataclasses.replace(
                response, file_slice=dataclasses.replace(piece, path=bad_copy)
            )

        monkeypatch.setattr(objecthttp, "_get_object", serve)

    def _bad_copy(self, path: Path) -> Path:
        copy = self.tmp / "corrupt-object"
        if not copy.exists():
            data = bytearray(path.read_bytes())
            data[self.bad] ^= 0xFF
            copy.write_bytes(bytes(data))
        return copy


def _bad_offset() -> tuple[int, int]:
    """An object offset inside segment 3 of part 2, and that segment's number."""
    part_size = download_part_size(PART)
    segment = part_size // CIPHER_SEGMENT_SIZE + 3
    return segment * CIPHER_SEGMENT_SIZE + 1000, segment


def _plaintext_of(result_path: Path, keys: KeyPair, keep_encrypted: bool) -> bytes:
    if not keep_encrypted:
        return result_path.read_bytes()
    plain = result_path.with_name("decrypted.bin")
    crypt.decrypt_file(result_path, plain, keys.secret)
    return plain.read_bytes()


@pytest.mark.parametrize("keep_encrypted", [False, True])
def test_corrupt_segment_is_fetched_again_from_that_segment(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keep_encrypted: bool,
) -> None:
    source, accession = archived
    bad, segment = _bad_offset()
    corruptor = Corruptor(tmp_path, bad, times=1)
    corruptor.install(monkeypatch)
    token = sandbox.download_token(user_keys.public, [accession])
    out = tmp_path / "out"
    with _client(sandbox, user_keys, token) as c:
        [result] = c.download([accession], out, keep_encrypted=keep_encrypted)
    assert result.status == "downloaded", result.error
    assert corruptor.corrupted == 1
    # the second GET starts at the bad segment, not at the part or block start
    assert corruptor.starts[1:] == [segment * CIPHER_SEGMENT_SIZE]
    assert _leftovers(out) == [result.path.name]
    assert _plaintext_of(result.path, user_keys, keep_encrypted) == source.read_bytes()


def test_persistently_corrupt_segment_fails_naming_part_and_segment(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, accession = archived
    bad, segment = _bad_offset()
    corruptor = Corruptor(tmp_path, bad, times=None)
    corruptor.install(monkeypatch)
    token = sandbox.download_token(user_keys.public, [accession])
    out = tmp_path / "out"
    out.mkdir()
    with (
        _client(sandbox, user_keys, token) as c,
        pytest.raises(DecryptionError) as caught,
    ):
        c.download_file(accession, out / "data.bin")
    message = str(caught.value)
    assert "\n" not in message
    assert accession in message and "part 2" in message
    assert f"segment {segment} " in message
    assert corruptor.corrupted == CORRUPT_ATTEMPTS
    assert _leftovers(out) == []  # no partial plaintext, no journal


# -- 3b. a download URL that cannot be refreshed keeps the resume state ------------


def test_failed_url_refresh_keeps_partial_download_then_resumes(
    sandbox_factory: Callable[..., Sandbox],
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = sandbox_factory(url_ttl_s=2)  # the client renews after 1 s
    source = random_file(tmp_path / "in", "data.bin", SIZE)
    accession = sandbox.add_file(source)
    restaging = threading.Event()  # the DCS answers 202 while set
    monkeypatch.setattr(dcs, "_staging_wait_s", lambda ctx, a: int(restaging.is_set()))

    def restage_and_outlive_the_url() -> None:
        if not restaging.is_set():
            restaging.set()
            time.sleep(1.2)

    progress = StopAfter(download_part_size(PART))  # part 1 has arrived
    progress.stop = restage_and_outlive_the_url
    token = sandbox.download_token(user_keys.public, [accession])
    destination = tmp_path / "out" / "data.bin"
    destination.parent.mkdir()
    with (
        _client(
            sandbox,
            user_keys,
            token,
            max_workers=1,
            max_attempts=2,
            backoff_base_s=0.01,
            progress=progress,
        ) as c,
        pytest.raises(PartFailedError, match="no URL for the part") as caught,
    ):
        c.download_file(accession, destination)
    assert "being staged again" in str(caught.value)
    assert _leftovers(destination.parent) == [".data.bin.journal", ".data.bin.part"]

    restaging.clear()
    with _client(sandbox, user_keys, token) as c:
        result = c.download_file(accession, destination)
    assert result.status == "downloaded"
    assert destination.read_bytes() == source.read_bytes()
    assert 0 < result.bytes_received < crypt.encrypted_size(SIZE, 0)


# -- 4. a token for the other direction is refused -------------------------------


def test_upload_token_used_for_download_is_refused(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    token = sandbox.upload_token(user_keys.public)
    with (
        _client(sandbox, user_keys, token) as c,
        pytest.raises(AuthError, match="is an upload work package") as caught,
    ):
        c.download(None, tmp_path / "out")
    assert "request a download token" in str(caught.value).lower()
    assert _leftovers(tmp_path / "out") == []


def test_download_token_used_for_upload_is_refused(
    sandbox: Sandbox, user_keys: KeyPair, archived: tuple[Path, str]
) -> None:
    source, accession = archived
    token = sandbox.download_token(user_keys.public, [accession])
    with (
        _client(sandbox, user_keys, token) as c,
        pytest.raises(AuthError, match="download work package, not for uploads"),
    ):
        c.upload([(source, "data.bin")])
    assert [u.alias for u in sandbox.uploads()] == []


# -- 5. third-party DEBUG logs carry no presigned signatures ----------------------


def test_root_debug_logging_shows_no_presigned_query(
    sandbox: Sandbox,
    user_keys: KeyPair,
    archived: tuple[Path, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, accession = archived
    caplog.set_level(logging.DEBUG)  # the root logger, as a host may do
    token = sandbox.download_token(user_keys.public, [accession])
    with _client(sandbox, user_keys, token) as c:
        [result] = c.download([accession], tmp_path / "out")
    assert result.status == "downloaded"
    lines = [r.getMessage() for r in caplog.records]
    requests = [line for line in lines if '"GET /' in line]
    assert requests, "urllib3 logged no request lines; the test proves nothing"
    assert [line for line in lines if "signature=" in line] == []
    assert any("?<redacted>" in line for line in requests)
