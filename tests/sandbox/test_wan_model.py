"""The sandbox's WAN model over real HTTP: latency per response, rates per connection and in total.

A model must add at least what it claims, so these tests assert lower bounds
on time (a delay at least the round trip; a body no faster than the rate);
the upper bounds are generous sanity limits for a loaded 2-core machine.
"""

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from snakemake_ghga.errors import ConfigError
from snakemake_ghga.sandbox import Sandbox
from snakemake_ghga.sandbox.objects import FileObjectStore
from snakemake_ghga.sandbox.wan import PACE_CHUNK_BYTES, TokenBucket
from tests.support.tools import tool

MiB = 1024 * 1024
MBIT = 125_000  # bytes/s per Mbit/s
SLACK_S = 20.0  # generous: a loaded machine may be slow, never faster


def _store(sandbox: Sandbox) -> FileObjectStore:
    found = sandbox._store
    assert isinstance(found, FileObjectStore)
    return found


def _outbox_object(sandbox: Sandbox, name: str, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    (_store(sandbox).objects_dir / "outbox" / name).write_bytes(data)
    return _store(sandbox).download_url(f"outbox/{name}"), data


def _timed_get(url: str, session: requests.Session | None = None) -> float:
    started = time.monotonic()
    answer = (session or requests).get(url, timeout=60)
    answer.raise_for_status()
    return time.monotonic() - started


def test_every_response_waits_at_least_one_round_trip(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "state", latency_ms=150) as sandbox:
        with requests.Session() as session:  # one kept-alive connection
            delays = [
                _timed_get(f"{sandbox.wkvs_url}/values", session) for _ in range(4)
            ]
        started = time.monotonic()
        missing = requests.get(f"{sandbox.base_url}/nowhere", timeout=60)
        error_delay = time.monotonic() - started

    assert all(0.15 <= delay < 0.15 + SLACK_S for delay in delays), delays
    assert missing.status_code == 404 and error_delay >= 0.15


def test_responses_are_not_held_back_by_nagle(tmp_path: Path) -> None:
    """Headers and body are separate sends: with Nagle on, the body waited for
    the client's delayed ACK of the headers, 40 ms per response, which is
    latency the sandbox added of its own (the official client paid it)."""
    with Sandbox(tmp_path / "state") as sandbox, requests.Session() as session:
        session.get(f"{sandbox.wkvs_url}/values", timeout=60).raise_for_status()
        assert sandbox._server is not None
        connections = list(sandbox._server._connections)
        nodelay = [
            c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in connections
        ]

    assert nodelay and all(nodelay)


def test_no_model_by_default_answers_without_delay(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "state") as sandbox:
        assert not sandbox.wan.active
        assert sandbox._server is not None and sandbox._server.link is None


def test_a_download_is_no_faster_than_the_connection_rate(tmp_path: Path) -> None:
    rate_mbps, size = 16.0, 2 * MiB
    with Sandbox(tmp_path / "state", connection_mbps=rate_mbps) as sandbox:
        url, data = _outbox_object(sandbox, "obj", size)
        started = time.monotonic()
        answer = requests.get(url, timeout=60)
        elapsed = time.monotonic() - started

    ideal_s = size / (rate_mbps * MBIT)
    assert answer.content == data
    assert (size - PACE_CHUNK_BYTES) / (rate_mbps * MBIT) <= elapsed
    assert elapsed < 5 * ideal_s + SLACK_S


def test_an_upload_is_no_faster_than_the_connection_rate(tmp_path: Path) -> None:
    rate_mbps, size = 16.0, 2 * MiB
    with Sandbox(tmp_path / "state", connection_mbps=rate_mbps) as sandbox:
        store = _store(sandbox)
        upload_id = store.create_multipart("inbox/f1")
        body = os.urandom(size)
        started = time.monotonic()
        answer = requests.put(
            store.part_upload_url("inbox/f1", upload_id, 1), data=body, timeout=60
        )
        elapsed = time.monotonic() - started
        [part] = store.list_parts("inbox/f1", upload_id)

    assert answer.status_code == 200 and part.size_bytes == size
    assert (size - PACE_CHUNK_BYTES) / (rate_mbps * MBIT) <= elapsed
    assert elapsed < 5 * size / (rate_mbps * MBIT) + SLACK_S


def test_connections_together_are_no_faster_than_the_total_rate(
    tmp_path: Path,
) -> None:
    total_mbps, size, connections = 16.0, 1 * MiB, 4
    with Sandbox(
        tmp_path / "state", connection_mbps=1000, total_mbps=total_mbps
    ) as sandbox:
        urls = [_outbox_object(sandbox, f"o{i}", size)[0] for i in range(connections)]
        started = time.monotonic()
        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(_timed_get, urls))
        elapsed = time.monotonic() - started

    moved = connections * size
    assert (moved - PACE_CHUNK_BYTES) / (total_mbps * MBIT) <= elapsed
    assert elapsed < 5 * moved / (total_mbps * MBIT) + SLACK_S


def test_token_bucket_passes_at_most_rate_times_time_plus_one_chunk() -> None:
    bucket = TokenBucket(4 * MiB)
    started = time.monotonic()
    for _ in range(32):
        bucket.take(PACE_CHUNK_BYTES)
    elapsed = time.monotonic() - started

    assert elapsed >= (32 - 1) * PACE_CHUNK_BYTES / (4 * MiB)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"connection_mbps": 0}, "--connection-mbps must be a positive"),
        ({"total_mbps": -5}, "--total-mbps must be a positive"),
        ({"latency_ms": -1}, "--latency-ms must be within"),
    ],
)
def test_bad_model_settings_are_refused(
    tmp_path: Path, options: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Sandbox(tmp_path / "state", **options)


def test_the_model_refuses_an_external_s3(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot shape an external S3"):
        Sandbox(
            tmp_path / "state",
            s3_endpoint_url="http://127.0.0.1:1",
            latency_ms=40,
        )


def test_serve_cli_applies_the_model(tmp_path: Path) -> None:
    command = [
        tool("ghga-transfer"),
        "sandbox",
        "serve",
        "--state",
        str(tmp_path / "state"),
        "--latency-ms",
        "200",
        "--connection-mbps",
        "100",
        "--total-mbps",
        "1000",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            url = process.stdout.readline().strip()
            described = process.stderr.readline().strip()
            delay = _timed_get(f"{url}/values")
        finally:
            process.terminate()
            process.wait(timeout=15)

    assert delay >= 0.2
    assert described == (
        "WAN model: 200 ms round trip, 100 Mbit/s per connection, 1000 Mbit/s in total"
    )


def test_serve_cli_refuses_a_zero_rate(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            tool("ghga-transfer"),
            "sandbox",
            "serve",
            "--state",
            str(tmp_path / "state"),
            "--connection-mbps",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "--connection-mbps must be a positive number of Mbit/s" in result.stderr
    assert "Traceback" not in result.stderr
