"""Interchange with the official ghga-connector 4.0.1 on the same sandbox.

Ours up → official download + decrypt; official batch-upload → ours down;
and the request counts of one upload and one download, ours vs official.
"""

from pathlib import Path

import pytest

from snakemake_ghga.config import MiB
from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair
from tests.support.official_connector import prepare_workdir, run_connector

from .conftest import make_client, random_file, request_counts, upload_and_archive

pytestmark = pytest.mark.interop

PART = 8 * MiB
PART_ENV = {"GHGA_CONNECTOR_PART_SIZE": str(PART)}


def _official_upload(sandbox: Sandbox, keys: KeyPair, source: Path, work: Path) -> None:
    prepare_workdir(work, keys.secret, keys.public)
    tsv = work / "files.tsv"
    tsv.write_text(f"{source}\t{source.name}\n")
    run = run_connector(
        ["batch-upload", "--tsv", str(tsv)],
        workdir=work,
        wkvs_url=sandbox.wkvs_url,
        env=PART_ENV,
        token=sandbox.upload_token(keys.public),
    )
    assert run.returncode == 0, run.describe()
    assert sandbox.wait_interrogated(source.name).state == "interrogated"


def _official_download(
    sandbox: Sandbox, keys: KeyPair, accession: str, work: Path
) -> Path:
    prepare_workdir(work, keys.secret, keys.public)
    (work / "enc").mkdir()
    token = sandbox.download_token(keys.public, [accession])
    run = run_connector(
        ["download", "--output-dir", "enc"],
        workdir=work,
        wkvs_url=sandbox.wkvs_url,
        env=PART_ENV,
        token=token,
    )
    assert run.returncode == 0, run.describe()
    assert "has been successfully downloaded" in run.stdout + run.stderr
    return work / "enc"


def test_ours_up_official_down_and_decrypt(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "in", "ours.bin", 13 * MiB + 7)
    accession = upload_and_archive(sandbox, user_keys, [source])["ours.bin"]
    work = tmp_path / "official"
    encrypted_dir = _official_download(sandbox, user_keys, accession, work)
    run = run_connector(
        ["decrypt", "--input-dir", "enc", "--output-dir", "plain"],
        workdir=work,
        wkvs_url=sandbox.wkvs_url,
    )
    assert run.returncode == 0, run.describe()
    assert [p.name for p in encrypted_dir.iterdir()] == [f"{accession}.bin.c4gh"]
    assert (work / "plain" / f"{accession}.bin").read_bytes() == source.read_bytes()


def test_official_up_ours_down(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "in", "theirs.bin", 11 * MiB + 3)
    _official_upload(sandbox, user_keys, source, tmp_path / "official")
    with make_client(sandbox, user_keys, sandbox.download_token(user_keys.public)) as c:
        [result] = c.download(None, tmp_path / "out")
    assert result.status == "downloaded"
    assert result.path.read_bytes() == source.read_bytes()


def test_request_counts_not_above_official(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "in", "count.bin", 30 * MiB)
    mark = len(sandbox.request_log())
    _official_upload(sandbox, user_keys, source, tmp_path / "up")
    official_up = request_counts(sandbox, mark)
    accession = sandbox.wait_interrogated("count.bin").accession
    assert accession is not None
    mark = len(sandbox.request_log())
    _official_download(sandbox, user_keys, accession, tmp_path / "down")
    official_down = request_counts(sandbox, mark)

    ours = source.with_name("ours.bin")
    source.rename(ours)
    mark = len(sandbox.request_log())
    upload_and_archive(sandbox, user_keys, [ours], part_size_bytes=PART)
    ours_up = request_counts(sandbox, mark)
    mark = len(sandbox.request_log())
    with make_client(
        sandbox,
        user_keys,
        sandbox.download_token(user_keys.public),
        part_size_bytes=PART,
    ) as client:
        [result] = client.download(
            [sandbox.wait_interrogated("ours.bin").accession or ""], tmp_path / "o"
        )
    assert result.status == "downloaded"
    ours_down = request_counts(sandbox, mark)
    print(f"upload official {dict(official_up)} ours {dict(ours_up)}")
    print(f"download official {dict(official_down)} ours {dict(ours_down)}")
    assert ours_up.total() <= official_up.total()
    assert ours_down.total() <= official_down.total()
    for kind in ("GET wps", "POST wps", "GET dcs"):
        assert ours_up[kind] <= official_up[kind], kind
        assert ours_down[kind] <= official_down[kind], kind
