"""The sandbox on a real S3 API (moto's server): multipart uploads and presigned URLs."""

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair
from tests.sandbox.conftest import PART_SIZE, MiB
from tests.support.ghga_http import GhgaHttpDriver


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """An S3 API on 127.0.0.1 (moto), for this module's tests."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_sandbox(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    """A running sandbox that keeps its objects in moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with Sandbox(tmp_path / "state", s3_endpoint_url=moto_url) as running:
        yield running


def _download(sandbox: Sandbox, keys: KeyPair, accession: str) -> bytes:
    user = GhgaHttpDriver(
        sandbox.wkvs_url, sandbox.download_token(keys.public), keys.secret
    )
    url = f"{user.dcs_url}/objects/{accession}"
    drs = user.call("GET", url, user.download_wot(accession)).json()
    envelope = user.call("GET", f"{url}/envelopes", user.download_wot(accession))
    s3_url = drs["access_methods"][0]["access_url"]["url"]
    ranges = [(a, min(a + MiB, drs["size"]) - 1) for a in range(0, drs["size"], MiB)]
    body = b"".join(
        requests.get(s3_url, headers={"Range": f"bytes={a}-{b}"}, timeout=30).content
        for a, b in ranges
    )
    header = crypt.parse_header(base64.b64decode(envelope.json()), keys.secret)
    plain = memoryview(bytearray(len(body)))
    size = crypt.SegmentDecryptor(header.session_keys).decrypt_into(
        memoryview(body), plain
    )
    return bytes(plain[:size])


def test_s3_upload_is_interrogated_and_downloads_identical(
    s3_sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, moto_url: str
) -> None:
    source = tmp_path / "reads.bam"
    source.write_bytes(os.urandom(6 * MiB))
    user = GhgaHttpDriver(
        s3_sandbox.wkvs_url, s3_sandbox.upload_token(user_keys.public), user_keys.secret
    )
    upload = user.encrypt(source, "reads.bam", PART_SIZE, tmp_path)
    file_id = user.start(upload)
    wot = user.upload_wot("upload", file_id=file_id)
    part_url = user.call("GET", f"{user.box_path}/{file_id}/parts/1", wot).json()

    for number, data in enumerate(upload.parts(), start=1):
        assert user.put_part(file_id, number, data).status_code == 200
    closed = user.close(file_id, upload.close_body())

    assert part_url.startswith(moto_url)
    assert "X-Amz-Signature=" in part_url
    assert closed.status_code == 204
    settled = s3_sandbox.wait_interrogated("reads.bam", 30)
    assert settled.state == "interrogated", settled.failure_reason
    assert _download(s3_sandbox, user_keys, settled.accession or "") == (
        source.read_bytes()
    )


def test_s3_close_with_wrong_md5_400_checksum_mismatch(
    s3_sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(os.urandom(1000))
    user = GhgaHttpDriver(
        s3_sandbox.wkvs_url, s3_sandbox.upload_token(user_keys.public), user_keys.secret
    )
    upload = user.encrypt(source, "a.bin", PART_SIZE, tmp_path)
    file_id = user.start(upload)
    assert user.put_part(file_id, 1, upload.parts()[0]).status_code == 200

    answer = user.close(
        file_id,
        upload.close_body() | {"encrypted_md5": hashlib.md5().hexdigest() + "-1"},
    )

    assert answer.status_code == 400
    assert answer.json()["exception_id"] == "checksumMismatch"


def test_s3_add_file_downloads_identical(
    s3_sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = tmp_path / "x.vcf"
    source.write_bytes(os.urandom(200_000))

    accession = s3_sandbox.add_file(source)

    assert _download(s3_sandbox, user_keys, accession) == source.read_bytes()
