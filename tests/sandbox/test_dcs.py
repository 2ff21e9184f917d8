"""The sandbox DCS: staging, DRS objects, personal envelopes, and a full download."""

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import DecryptionError
from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair
from tests.support.ghga_http import GhgaHttpDriver


@pytest.fixture
def staged_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox that stages each file for 1.5 s."""
    with Sandbox(tmp_path / "state", stage_delay_s=1.5) as running:
        yield running


def _archive(sandbox: Sandbox, tmp_path: Path, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    path = tmp_path / "reads.bam"
    path.write_bytes(data)
    return sandbox.add_file(path), data


def _downloader(sandbox: Sandbox, keys: KeyPair) -> GhgaHttpDriver:
    token = sandbox.download_token(keys.public)
    return GhgaHttpDriver(sandbox.wkvs_url, token, keys.secret)


def test_drs_object_202_with_integer_retry_after_while_staging(
    staged_sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    accession, _ = _archive(staged_sandbox, tmp_path, 1000)
    user = _downloader(staged_sandbox, user_keys)
    url = f"{user.dcs_url}/objects/{accession}"

    first = user.call("GET", url, user.download_wot(accession))
    time.sleep(int(first.headers["Retry-After"]))
    second = user.call("GET", url, user.download_wot(accession))

    assert first.status_code == 202
    assert first.headers["Retry-After"] == "2"
    assert first.json() is None
    assert second.status_code == 200


def test_work_package_lists_accessions_with_extensions(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    accession, _ = _archive(sandbox, tmp_path, 10)

    user = _downloader(sandbox, user_keys)

    assert user.package["type"] == "download"
    assert user.package["files"] == {accession: ".bam"}


def test_drs_object_fields_and_full_decrypting_download(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    accession, data = _archive(sandbox, tmp_path, 3 * 65_536 + 11)
    user = _downloader(sandbox, user_keys)
    url = f"{user.dcs_url}/objects/{accession}"

    drs = user.call("GET", url, user.download_wot(accession)).json()
    envelope = user.call("GET", f"{url}/envelopes", user.download_wot(accession))

    assert drs["id"] == accession
    assert drs["size"] == crypt.encrypted_size(len(data), header_size=0)
    assert drs["checksums"] == [
        {"checksum": hashlib.sha256(data).hexdigest(), "type": "sha-256"}
    ]
    header = base64.b64decode(envelope.json())
    s3_url = drs["access_methods"][0]["access_url"]["url"]
    body = b"".join(
        requests.get(s3_url, headers={"Range": f"bytes={a}-{a + 99_999}"}).content
        for a in range(0, drs["size"], 100_000)
    )
    assert len(body) == drs["size"]
    parsed = crypt.parse_header(header, user_keys.secret)
    plain = memoryview(bytearray(len(data)))
    crypt.SegmentDecryptor(parsed.session_keys).decrypt_into(memoryview(body), plain)
    assert bytes(plain) == data


def test_envelope_is_for_the_key_in_the_wot(
    sandbox: Sandbox, user_keys: KeyPair, hub_keys: KeyPair, tmp_path: Path
) -> None:
    accession, _ = _archive(sandbox, tmp_path, 10)
    user = _downloader(sandbox, user_keys)
    url = f"{user.dcs_url}/objects/{accession}/envelopes"

    header = base64.b64decode(
        user.call("GET", url, user.download_wot(accession)).json()
    )

    assert len(crypt.parse_header(header, user_keys.secret).session_keys) == 1
    with pytest.raises(DecryptionError):
        crypt.parse_header(header, hub_keys.secret)


def test_drs_object_with_wot_for_another_accession_403(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    first, _ = _archive(sandbox, tmp_path, 10)
    second, _ = _archive(sandbox, tmp_path, 20)
    user = _downloader(sandbox, user_keys)

    answer = user.call(
        "GET", f"{user.dcs_url}/objects/{second}", user.download_wot(first)
    )

    assert answer.status_code == 403
    assert "description" in answer.json()


def test_download_wot_for_accession_outside_package_403(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    first, _ = _archive(sandbox, tmp_path, 10)
    token = sandbox.download_token(user_keys.public, [first])
    second, _ = _archive(sandbox, tmp_path, 20)
    user = GhgaHttpDriver(sandbox.wkvs_url, token, user_keys.secret)

    answer = user.http.post(
        f"{user.wps_url}/work-packages/{user.package_id}/files/{second}"
        "/work-order-tokens",
        headers={"Authorization": f"Bearer {user.access_token}"},
    )

    assert answer.status_code == 403


def test_drs_object_without_token_401(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    accession, _ = _archive(sandbox, tmp_path, 10)
    user = _downloader(sandbox, user_keys)

    answer = user.http.get(f"{user.dcs_url}/objects/{accession}")

    assert answer.status_code == 401


def test_health_endpoints_answer_ok(sandbox: Sandbox) -> None:
    for service in ("ucs", "dcs", "wps"):
        answer = requests.get(f"{sandbox.base_url}/{service}/health")
        assert answer.json() == {"status": "OK"}


def test_removed_accession_frees_its_object_and_is_unknown(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    accession, _ = _archive(sandbox, tmp_path, 1000)
    kept, _ = _archive(sandbox, tmp_path, 10)
    outbox = sandbox.state_dir / "objects" / "outbox"
    assert len(list(outbox.iterdir())) == 2

    sandbox.remove_accession(accession)

    assert [a.accession for a in sandbox.accessions()] == [kept]
    assert len(list(outbox.iterdir())) == 1
    with pytest.raises(KeyError):
        sandbox.remove_accession(accession)
