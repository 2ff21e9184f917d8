"""A ciphertext part that fails its MAC is fetched again; if it stays corrupt
the download fails with one line and leaves no plaintext (issue 8, item 3)."""

import dataclasses
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from snakemake_ghga.sandbox import objecthttp

from .harness import MiB, World, file_sha256, random_file, s3_bytes
from .test_bad_inputs import assert_one_line_error, download

PART = 5 * MiB


def _corrupt_serving(
    monkeypatch: pytest.MonkeyPatch, tmp: Path, times: int | None
) -> list[int]:
    """Serve a flipped byte in the second part (the first GET at offset > 0)."""
    original: Callable[..., Any] = objecthttp._get_object
    served: list[int] = []
    lock = threading.Lock()  # parts are fetched concurrently: decide atomically

    def corrupt(store: Any, request: Any) -> Any:
        response = original(store, request)
        piece = response.file_slice
        if piece is None or piece.offset == 0:
            return response
        with lock:
            if served and piece.offset != served[0]:
                return response
            if times is not None and len(served) >= times:
                return response
            bad = tmp / "corrupt-object"
            if not bad.exists():
                shutil.copy(piece.path, bad)
                with bad.open("r+b") as handle:
                    handle.seek(piece.offset + 1000)
                    byte = handle.read(1)
                    handle.seek(piece.offset + 1000)
                    handle.write(bytes([byte[0] ^ 0xFF]))
            served.append(piece.offset)
        return dataclasses.replace(
            response, file_slice=dataclasses.replace(piece, path=bad)
        )

    monkeypatch.setattr(objecthttp, "_get_object", corrupt)
    return served


def test_corrupt_part_once_is_fetched_again(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "c.bin", 12 * MiB)
    accession = world.archive(source)
    served = _corrupt_serving(monkeypatch, tmp_path, times=1)
    mark = len(world.sandbox.request_log())
    done = download(
        world,
        accession,
        out=tmp_path / "out",
        token=world.token_file("download", [accession]),
    )
    assert done.returncode == 0, done.stderr
    assert len(served) == 1
    [output] = (tmp_path / "out").iterdir()
    assert file_sha256(output) == file_sha256(source)
    body = s3_bytes(world.sandbox.request_log()[mark:], "GET")
    clean = source.stat().st_size + 28 * 192  # ciphertext body of 12 MiB
    part_on_wire = -(-PART // 65_564) * 65_564  # download ranges are whole segments
    assert clean < body <= clean + part_on_wire  # the bad part again, no more


def test_persistently_corrupt_part_fails_and_leaves_no_plaintext(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "p.bin", 12 * MiB)
    accession = world.archive(source)
    served = _corrupt_serving(monkeypatch, tmp_path, times=None)
    done = download(
        world,
        accession,
        out=tmp_path / "out",
        token=world.token_file("download", [accession]),
    )
    assert_one_line_error(done, accession)
    assert served, "no corrupt bytes were served; the test proved nothing"
    assert list((tmp_path / "out").iterdir()) == []
