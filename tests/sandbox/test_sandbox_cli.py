"""`ghga-transfer sandbox …`: serve (signals, printed URL), token, ls and add."""

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from snakemake_ghga.cli import main
from tests.conftest import KeyPair
from tests.support.ghga_http import GhgaHttpDriver, unseal
from tests.support.signals import default_signals
from tests.support.tools import tool

TOKEN = re.compile(r"([0-9a-f-]{36}):([A-Za-z0-9+/=]{96})")


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    assert ready, "no line printed in time"
    return process.stdout.readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_wkvs_url_and_stops_cleanly_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    state = tmp_path / "state"
    command = [
        tool("ghga-transfer"),
        "sandbox",
        "serve",
        "--state",
        str(state),
        "--port",
        "0",
        "--stage-delay",
        "1",
    ]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,  # SIGINT may be ignored in a background job
    ) as process:
        try:
            url = _read_line(process, 30)
            values = requests.get(f"{url}/values", timeout=10).json()
            process.send_signal(stop_signal)
            returncode = process.wait(timeout=15)
        finally:
            process.kill()

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\.well-known", url)
    assert (state / "wkvs_url").read_text().strip() == url
    assert values["ucs_api_url"] == url.replace("/.well-known", "/ucs")
    assert (state / "hub.sec").exists() and (state / "hub.pub").exists()
    assert returncode == 0


def test_serve_rejects_fault_rate_above_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sandbox", "serve", "--state", str(tmp_path), "--fault-rate", "2"])

    assert code == 2
    assert "--fault-rate" in capsys.readouterr().err


def test_token_upload_prints_portal_token(
    tmp_path: Path, user_keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "sandbox",
            "token",
            "upload",
            "--state",
            str(tmp_path / "s"),
            "--user-public-key",
            str(user_keys.public_path),
        ]
    )

    printed = capsys.readouterr().out.strip()
    assert code == 0
    found = TOKEN.fullmatch(printed)
    assert found, printed
    assert re.fullmatch(r"[A-Za-z0-9]{24}", unseal(user_keys.secret, found[2]))


def test_add_then_token_download_then_ls(
    tmp_path: Path, user_keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "s")
    files = [tmp_path / "x.vcf.gz", tmp_path / "y.bam"]
    for path in files:
        path.write_bytes(os.urandom(70_000))

    assert main(["sandbox", "add", "--state", state, *map(str, files)]) == 0
    added = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert (
        main(
            [
                "sandbox",
                "token",
                "download",
                "--state",
                state,
                "--user-public-key",
                str(user_keys.public_path),
                added[1][0],
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert main(["sandbox", "ls", "--state", state]) == 0
    listing = capsys.readouterr().out

    assert [path for _, path in added] == [str(p) for p in files]
    assert all(re.fullmatch(r"GHGAF\d+", accession) for accession, _ in added)
    assert TOKEN.fullmatch(token)
    assert f"ACCESSION\t{added[0][0]}\tx.vcf.gz\tsize=70000" in listing


def test_add_refuses_crypt4gh_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encrypted = tmp_path / "x.c4gh"
    encrypted.write_bytes(b"crypt4gh\x01\x00\x00\x00rest")

    code = main(["sandbox", "add", "--state", str(tmp_path / "s"), str(encrypted)])

    assert code == 1
    assert "already Crypt4GH" in capsys.readouterr().err


def test_ls_on_missing_state_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sandbox", "ls", "--state", str(tmp_path / "nothing")])

    assert code == 2
    assert "no sandbox state" in capsys.readouterr().err


def test_python_module_entry_point_serves_the_same_state(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    state = tmp_path / "state"
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake_ghga.sandbox",
            "token",
            "upload",
            "--state",
            str(state),
            "--user-public-key",
            str(user_keys.public_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    command = [
        sys.executable,
        "-m",
        "snakemake_ghga.sandbox",
        "serve",
        "--state",
        str(state),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            url = _read_line(process, 30)
            driver = GhgaHttpDriver(url, token, user_keys.secret)
            listing = driver.call("GET", driver.box_path, driver.upload_wot("view"))
        finally:
            process.terminate()

    assert listing.json() == {"items": [], "total_count": 0}
