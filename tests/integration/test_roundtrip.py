"""Round trips through the sandbox: sizes, many files at once, skip/overwrite."""

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import MiB
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.parts import MIN_UPLOAD_PART_SIZE
from tests.conftest import KeyPair

from .conftest import make_client, random_file, request_counts, upload_and_archive

ONE_PART_PLAIN = crypt.plain_size_of(MIN_UPLOAD_PART_SIZE - crypt.HEADER_SIZE)
SIZES = [1, 65_535, 65_536, 65_537, ONE_PART_PLAIN, ONE_PART_PLAIN + 1, 12 * MiB + 3]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_many_sizes_at_once_round_trip_byte_identical(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    files = [random_file(tmp_path / "in", f"f{size}.bin", size) for size in SIZES]
    accessions = upload_and_archive(sandbox, user_keys, files)
    mark = len(sandbox.request_log())
    token = sandbox.download_token(user_keys.public)
    with make_client(sandbox, user_keys, token) as client:
        results = client.download(None, tmp_path / "out")
    assert {r.status for r in results} == {"downloaded"}
    for path in files:
        output = tmp_path / "out" / f"{accessions[path.name]}.bin"
        assert output.read_bytes() == path.read_bytes(), path.name
        assert output.stat().st_mode & 0o777 == 0o644
    assert not list((tmp_path / "out").glob(".*"))  # no temp or journal left
    counts = request_counts(sandbox, mark)
    assert counts["GET wps"] == 1  # the work package is fetched once per run


def test_large_file_round_trip_200_mib(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "in", "big.bin", 200 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["big.bin"]
    token = sandbox.download_token(user_keys.public, [accession])
    with make_client(sandbox, user_keys, token, part_size_bytes=16 * MiB) as client:
        result = client.download_file(accession, tmp_path / "big.out")
    assert result.sha256 == _sha256(source)
    assert _sha256(tmp_path / "big.out") == result.sha256


def test_keep_encrypted_writes_c4gh_that_decrypts(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "in", "k.bin", 7 * MiB + 11)
    accession = upload_and_archive(sandbox, user_keys, [source])["k.bin"]
    with make_client(sandbox, user_keys, sandbox.download_token(user_keys.public)) as c:
        [result] = c.download([accession], tmp_path / "out", keep_encrypted=True)
    assert result.path.name == f"{accession}.bin.c4gh"
    crypt.decrypt_file(result.path, tmp_path / "plain", user_keys.secret)
    assert (tmp_path / "plain").read_bytes() == source.read_bytes()


def test_download_skips_complete_outputs_unless_overwrite(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "in", "s.bin", 1000)
    accession = upload_and_archive(sandbox, user_keys, [source])["s.bin"]
    output = tmp_path / "out" / f"{accession}.bin"
    output.parent.mkdir()
    output.write_bytes(b"stale")
    token = sandbox.download_token(user_keys.public)
    with make_client(sandbox, user_keys, token) as client:
        [skipped] = client.download(None, tmp_path / "out")
        assert skipped.status == "skipped"
        assert output.read_bytes() == b"stale"
        [replaced] = client.download(None, tmp_path / "out", overwrite=True)
    assert replaced.status == "downloaded"
    assert output.read_bytes() == source.read_bytes()


def test_upload_skips_alias_in_box_and_overwrite_replaces_it(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    first = random_file(tmp_path / "a", "same.bin", 3000)
    second = random_file(tmp_path / "b", "same.bin", 4000)
    upload_and_archive(sandbox, user_keys, [first])
    token = sandbox.upload_token(user_keys.public)
    with make_client(sandbox, user_keys, token) as client:
        [skipped] = client.upload([(second, "same.bin")])
        assert skipped.status == "skipped"
        [replaced] = client.upload([(second, "same.bin")], overwrite=True)
        assert replaced.status == "uploaded"
        live = [u for u in client.list_uploads() if u.state != "cancelled"]
    assert [(u.alias, u.decrypted_size) for u in live] == [("same.bin", 4000)]


def test_already_encrypted_input_fails_alone(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    good = random_file(tmp_path, "good.bin", 100)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(crypt.MAGIC + b"rest")
    with make_client(sandbox, user_keys, sandbox.upload_token(user_keys.public)) as c:
        results = c.upload([(bad, "bad.bin"), (good, "good.bin")])
    assert [r.status for r in results] == ["failed", "uploaded"]
    assert "already Crypt4GH" in (results[0].error or "")


@pytest.mark.parametrize("workers", [1, 3])
def test_upload_memory_does_not_depend_on_workers_for_correctness(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, workers: int
) -> None:
    source = random_file(tmp_path, "w.bin", 11 * MiB)
    token = sandbox.upload_token(user_keys.public)
    with make_client(sandbox, user_keys, token, max_workers=workers) as client:
        [result] = client.upload([(source, "w.bin")])
    assert result.status == "uploaded"
    assert sandbox.wait_interrogated("w.bin").state == "interrogated"


def test_refused_create_reports_remedy_and_leaves_no_state(
    sandbox_factory: Callable[..., Sandbox], user_keys: KeyPair, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(box_max_size_bytes=1000)
    source = random_file(tmp_path / "in", "big.bin", 2000)
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    with make_client(sandbox, user_keys, token, tmp_dir=temp_dir) as client:
        [result] = client.upload([(source, "big.bin")])
    assert result.status == "failed"
    assert "size limit" in (result.error or "")
    assert list(state_dir_path(temp_dir).iterdir()) == []
    assert sandbox.uploads() == []


def test_staging_is_waited_out_for_all_files_at_once(
    sandbox_factory: Callable[..., Sandbox], user_keys: KeyPair, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(stage_delay_s=2)
    files = [random_file(tmp_path / "in", f"s{i}.txt", 100 + i) for i in range(3)]
    for path in files:
        sandbox.add_file(path)
    token = sandbox.download_token(user_keys.public)
    started = time.monotonic()
    with make_client(sandbox, user_keys, token) as client:
        results = client.download(None, tmp_path / "out")
    elapsed = time.monotonic() - started
    assert [r.status for r in results] == ["downloaded"] * 3
    assert elapsed < 4.5  # one wait of ~2 s for all, not 2 s per file
    staged = [e for e in sandbox.request_log() if e["status"] == 202]
    assert len(staged) == 3
