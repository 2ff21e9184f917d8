"""Conformance: the official ghga-connector 4.0.1, unchanged, against the sandbox.

Installs the connector into its own cached venv on first use (its pins
conflict with ours) and drives its CLI the way GHGA's testbed does: key files
in the work dir, the WKVS URL in the environment, the token on stdin.
"""

import filecmp
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.sandbox import Sandbox, UploadInfo
from tests.support.official_connector import (
    ConnectorRun,
    prepare_workdir,
    run_connector,
)

pytestmark = pytest.mark.interop

MiB = 1024 * 1024
FILES = {"tiny.txt": 100, "big.bam": 150 * MiB, "edge.vcf.gz": 5 * MiB + 1}
CONNECTOR_ENV = {"GHGA_CONNECTOR_PART_SIZE": str(16 * MiB)}


@dataclass(frozen=True)
class RoundTrip:
    """What one upload → download → decrypt with the official client left."""

    sandbox: Sandbox
    work: Path
    upload: ConnectorRun
    settled: dict[str, UploadInfo]
    download: ConnectorRun
    decrypt: ConnectorRun


def _write_inputs(work: Path) -> None:
    for name, size in FILES.items():
        (work / name).write_bytes(os.urandom(size))
    (work / "files.tsv").write_text("".join(f"{n}\t{n}\n" for n in FILES))
    (work / "downloads").mkdir()


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoundTrip]:
    """Upload the three files with batch-upload, then download and decrypt all."""
    root = tmp_path_factory.mktemp("official")
    secret, public = keys.generate_key_pair()
    work = prepare_workdir(root / "work", secret, public)
    _write_inputs(work)
    with Sandbox(root / "state", stage_delay_s=1) as sandbox:
        url = sandbox.wkvs_url
        upload = run_connector(
            ["batch-upload", "--tsv", "files.tsv"],
            workdir=work,
            wkvs_url=url,
            token=sandbox.upload_token(public),
            env=CONNECTOR_ENV,
        )
        settled = {name: sandbox.wait_interrogated(name, 60) for name in FILES}
        download = run_connector(
            ["download", "--output-dir", "downloads"],
            workdir=work,
            wkvs_url=url,
            token=sandbox.download_token(public),
            env=CONNECTOR_ENV,
        )
        decrypt = run_connector(
            ["decrypt", "--input-dir", "downloads", "--output-dir", "plain"],
            workdir=work,
            wkvs_url=url,
        )
        yield RoundTrip(sandbox, work, upload, settled, download, decrypt)


def test_batch_upload_of_three_files_all_interrogated(round_trip: RoundTrip) -> None:
    upload = round_trip.upload

    assert upload.returncode == 0, upload.describe()
    assert "All files uploaded successfully" in upload.stdout, upload.describe()
    states = {name: u.state for name, u in round_trip.settled.items()}
    assert states == dict.fromkeys(FILES, "interrogated")


def test_download_and_decrypt_are_byte_identical(round_trip: RoundTrip) -> None:
    for run in (round_trip.download, round_trip.decrypt):
        assert run.returncode == 0, run.describe()
    assert round_trip.download.stdout.count("has been successfully downloaded") == 3

    for name, upload in round_trip.settled.items():
        extension = "".join(Path(name).suffixes)
        output = round_trip.work / "plain" / f"{upload.accession}{extension}"
        assert filecmp.cmp(round_trip.work / name, output, shallow=False), name


def test_request_log_shows_parts_and_staging(round_trip: RoundTrip) -> None:
    entries = round_trip.sandbox.request_log()

    counts = Counter(
        (e["method"], e["path"].split("/")[1], e["status"]) for e in entries
    )

    assert counts[("PUT", "s3", 200)] == 1 + 10 + 1  # 16 MiB parts
    assert counts[("PATCH", "ucs", 204)] == 3
    assert counts[("GET", "dcs", 202)] >= 1
    assert counts[("GET", "s3", 206)] >= 1 + 10 + 1
    assert [e for e in entries if e["status"] >= 500] == []
