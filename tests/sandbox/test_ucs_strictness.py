"""Strictness of the sandbox UCS: each rule of reference §1.5/§8.9 as its own test."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair
from tests.sandbox.conftest import PART_SIZE, MiB, sign_wot
from tests.support.ghga_http import GhgaHttpDriver, close_body_of


def _exception_id(answer: requests.Response) -> str:
    return str(answer.json()["exception_id"])


def test_close_wrong_encrypted_md5_400_checksum_mismatch(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(1000), "a.bin", PART_SIZE, tmp_path)
    file_id = uploader.start(upload)
    assert uploader.put_part(file_id, 1, upload.parts()[0]).status_code == 200
    body = upload.close_body() | {"encrypted_md5": "0" * 32 + "-1"}

    answer = uploader.close(file_id, body)

    assert answer.status_code == 400
    assert _exception_id(answer) == "checksumMismatch"
    assert sandbox.uploads()[0].state == "failed"


def test_close_wrong_size_400_upload_size_mismatch(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(1000), "a.bin", PART_SIZE, tmp_path)
    declared = upload.result.encrypted_size + 1
    answer = uploader.create("a.bin", upload.result.plain_size, declared, PART_SIZE)
    file_id = answer.json()["file_id"]
    assert uploader.put_part(file_id, 1, upload.parts()[0]).status_code == 200

    answer = uploader.close(file_id, upload.close_body())

    assert answer.status_code == 400
    assert _exception_id(answer) == "uploadSizeMismatch"
    assert sandbox.uploads()[0].state == "failed"


def test_close_gap_in_part_numbers_rejected(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(11 * MiB), "a.bin", PART_SIZE, tmp_path)
    parts = upload.parts()
    assert len(parts) == 3
    file_id = uploader.start(upload)
    for number in (1, 3):  # part 2 never sent
        assert uploader.put_part(file_id, number, parts[number - 1]).status_code == 200

    answer = uploader.close(file_id, close_body_of([parts[0], parts[2]], "0" * 64))

    assert answer.status_code == 400
    assert "1..2" in answer.json()["description"]
    assert sandbox.uploads()[0].state == "failed"


def test_close_short_non_last_part_rejected(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(6 * MiB), "a.bin", PART_SIZE, tmp_path)
    data = upload.path.read_bytes()
    parts = [data[: PART_SIZE - 1], data[PART_SIZE - 1 :]]  # part 1 one byte short
    file_id = uploader.start(upload)
    for number, part in enumerate(parts, start=1):
        assert uploader.put_part(file_id, number, part).status_code == 200

    answer = uploader.close(file_id, close_body_of(parts, upload.result.plain_sha256))

    assert answer.status_code == 400
    assert "part 1 has 5242879 bytes" in answer.json()["description"]
    assert sandbox.uploads()[0].state == "failed"


@pytest.mark.parametrize(
    ("encrypted_size", "part_size"),
    [
        (10 * MiB, 5 * MiB - 1),  # below 5 MiB
        (10 * MiB, 5 * 1024**3 + 1),  # above 5 GiB
        (5 * MiB * 10_000 + 1, 5 * MiB),  # 10,001 parts
    ],
    ids=["below-5-MiB", "above-5-GiB", "over-10000-parts"],
)
def test_create_bad_part_size_400_invalid_part_size(
    sandbox: Sandbox, uploader: GhgaHttpDriver, encrypted_size: int, part_size: int
) -> None:
    answer = uploader.create("a.bin", 1000, encrypted_size, part_size)

    assert answer.status_code == 400
    assert _exception_id(answer) == "invalidPartSize"
    assert sandbox.uploads() == []


def test_create_10000_parts_accepted(uploader: GhgaHttpDriver) -> None:
    answer = uploader.create("a.bin", 1000, 5 * MiB * 10_000, 5 * MiB)

    assert answer.status_code == 201


def test_expired_wot_401(
    sandbox: Sandbox, uploader: GhgaHttpDriver, user_keys: KeyPair
) -> None:
    box_id = uploader.package["file_upload_box_id"]
    fresh = sign_wot(sandbox, user_keys.public, work_type="view", box_id=box_id)
    expired = sign_wot(
        sandbox, user_keys.public, expires_in_s=-1, work_type="view", box_id=box_id
    )
    assert uploader.call("GET", uploader.box_path, fresh).status_code == 200

    answer = uploader.call("GET", uploader.box_path, expired)

    assert answer.status_code == 401
    assert "expired" in answer.json()["description"]


def test_wot_for_another_file_403(
    uploader: GhgaHttpDriver, sample: Callable[[int], Path], tmp_path: Path
) -> None:
    first = uploader.start(uploader.encrypt(sample(10), "a.bin", PART_SIZE, tmp_path))
    second = uploader.start(uploader.encrypt(sample(10), "b.bin", PART_SIZE, tmp_path))
    wot_for_first = uploader.upload_wot("upload", file_id=first)

    answer = uploader.call(
        "GET", f"{uploader.box_path}/{second}/parts/1", wot_for_first
    )

    assert answer.status_code == 403


def test_sixth_concurrent_init_429_too_many_open_uploads(
    uploader: GhgaHttpDriver,
) -> None:
    for number in range(5):
        assert uploader.create(f"f{number}", 10, 162, PART_SIZE).status_code == 201

    answer = uploader.create("f5", 10, 162, PART_SIZE)

    assert answer.status_code == 429
    assert _exception_id(answer) == "tooManyOpenUploads"
    assert "Retry-After" not in answer.headers


def test_duplicate_alias_409_file_upload_already_exists(
    uploader: GhgaHttpDriver,
) -> None:
    assert uploader.create("a.bin", 10, 162, PART_SIZE).status_code == 201

    answer = uploader.create("a.bin", 10, 162, PART_SIZE)

    assert answer.status_code == 409
    assert _exception_id(answer) == "fileUploadAlreadyExists"


def test_tampered_ciphertext_interrogation_failed(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(200_000), "a.bin", PART_SIZE, tmp_path)
    data = bytearray(upload.path.read_bytes())
    data[124 + 70_000] ^= 0x01  # a byte inside segment 1
    file_id = uploader.start(upload)
    assert uploader.put_part(file_id, 1, bytes(data)).status_code == 200

    answer = uploader.close(
        file_id, close_body_of([bytes(data)], upload.result.plain_sha256)
    )

    assert answer.status_code == 204
    settled = sandbox.wait_interrogated("a.bin", timeout_s=20)
    assert settled.state == "failed"
    assert "segment 1" in (settled.failure_reason or "")
    assert sandbox.accessions() == []


def test_expired_presigned_url_403(
    tmp_path: Path, user_keys: KeyPair, sample: Callable[[int], Path]
) -> None:
    with Sandbox(tmp_path / "short", url_ttl_s=1) as short_lived:
        driver = GhgaHttpDriver(
            short_lived.wkvs_url,
            short_lived.upload_token(user_keys.public),
            user_keys.secret,
        )
        file_id = driver.create("a.bin", 10, 162, PART_SIZE).json()["file_id"]
        wot = driver.upload_wot("upload", file_id=file_id)
        url = driver.call("GET", f"{driver.box_path}/{file_id}/parts/1", wot).json()
        time.sleep(2.1)

        answer = driver.http.put(url, data=b"x" * 162, timeout=10)

    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text
    assert "expired" in answer.text


def test_wrong_decrypted_size_interrogation_failed(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(1000), "a.bin", PART_SIZE, tmp_path)
    answer = uploader.create(
        "a.bin", 999, upload.result.encrypted_size, PART_SIZE
    )  # one byte less than the plaintext: the envelope would be 125 bytes
    file_id = answer.json()["file_id"]
    assert uploader.put_part(file_id, 1, upload.parts()[0]).status_code == 200

    assert uploader.close(file_id, upload.close_body()).status_code == 204

    settled = sandbox.wait_interrogated("a.bin", timeout_s=20)
    assert settled.state == "failed"
    assert "imply 125" in (settled.failure_reason or "")


def test_envelope_for_another_hub_interrogation_failed(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
    hub_keys: KeyPair,
) -> None:
    uploader.hub_public_key = hub_keys.public  # encrypt to the wrong Data Hub
    upload = uploader.encrypt(sample(1000), "a.bin", PART_SIZE, tmp_path)

    _, answer = uploader.upload(upload)

    assert answer.status_code == 204
    settled = sandbox.wait_interrogated("a.bin", timeout_s=20)
    assert settled.state == "failed"
    assert "no header packet" in (settled.failure_reason or "")
