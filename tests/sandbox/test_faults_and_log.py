"""Fault injection (deterministic under a seed) and the JSON-lines request log."""

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from snakemake_ghga.sandbox import Sandbox
from snakemake_ghga.sandbox.faults import Fault, FaultInjector
from snakemake_ghga.sandbox.http import (
    Request,
    Response,
    Router,
    SandboxHttpServer,
    json_response,
)
from snakemake_ghga.sandbox.requestlog import RequestLog

BODY = os.urandom(1_000_000)


def _seed_whose_first_object_fault_is(fault: Fault) -> int:
    return next(
        seed for seed in range(100) if FaultInjector(1.0, seed).roll("object") == fault
    )


def _read_put(request: Request) -> Response:
    view = memoryview(bytearray(request.body.length))
    while request.body.remaining:
        request.body.readinto(view[request.body.consumed :])
    return json_response(200, len(view))


@pytest.fixture
def fault_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A bare server whose object routes always fault (rate 1) with a given seed."""
    router = Router()
    router.add("GET", "/obj", lambda r: Response(200, BODY), "object")
    router.add("PUT", "/obj", _read_put, "object")
    router.add("GET", "/health", lambda r: json_response(200, "ok"), "health")
    faults = FaultInjector(1.0, request.param)
    server = SandboxHttpServer(0, router, faults, RequestLog(tmp_path / "log"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.base_url
    server.shutdown()
    server.close_connections()
    server.server_close()


def test_fault_sequence_is_deterministic_under_a_seed() -> None:
    one, two, other = (
        FaultInjector(0.3, 7),
        FaultInjector(0.3, 7),
        FaultInjector(0.3, 8),
    )

    rolls = [[f.roll("object") for _ in range(200)] for f in (one, two, other)]

    assert rolls[0] == rolls[1]
    assert rolls[0] != rolls[2]
    hits = sum(r is not None for r in rolls[0])
    assert 30 < hits < 90
    assert {Fault.CUT, Fault.UNAVAILABLE} <= set(rolls[0])


def test_api_faults_are_503_and_health_is_spared() -> None:
    faults = FaultInjector(1.0, 0)

    assert {faults.roll("api") for _ in range(50)} == {Fault.UNAVAILABLE}
    assert {faults.roll("health") for _ in range(50)} == {None}


@pytest.mark.parametrize(
    "fault_server", [_seed_whose_first_object_fault_is(Fault.CUT)], indirect=True
)
def test_cut_fault_ends_get_body_halfway(fault_server: str) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{fault_server}/obj", timeout=10)


@pytest.mark.parametrize(
    "fault_server", [_seed_whose_first_object_fault_is(Fault.CUT)], indirect=True
)
def test_cut_fault_drops_put_connection_unanswered(fault_server: str) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.put(f"{fault_server}/obj", data=BODY, timeout=10)


@pytest.mark.parametrize(
    "fault_server",
    [_seed_whose_first_object_fault_is(Fault.UNAVAILABLE)],
    indirect=True,
)
def test_unavailable_fault_is_503_slow_down(fault_server: str) -> None:
    answer = requests.get(f"{fault_server}/obj", timeout=10)

    assert answer.status_code == 503
    assert "<Code>SlowDown</Code>" in answer.text
    assert requests.get(f"{fault_server}/health", timeout=10).status_code == 200


def test_sandbox_fault_rate_one_makes_api_calls_503(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "state", fault_rate=1.0, seed=3) as faulty:
        answer = requests.get(f"{faulty.wkvs_url}/values", timeout=10)
        entries = faulty.request_log()

    assert answer.status_code == 503
    assert entries[-1]["fault"] == "503"


def test_request_log_has_one_line_per_request_without_query(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    requests.get(f"{sandbox.wkvs_url}/values", timeout=10)
    requests.get(f"{sandbox.base_url}/ucs/health?probe=1", timeout=10)
    requests.get(f"{sandbox.base_url}/nowhere", timeout=10)

    lines = (sandbox.state_dir / "requests.jsonl").read_text().splitlines()

    entries = [json.loads(line) for line in lines]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/.well-known/values", 200),
        ("GET", "/ucs/health", 200),
        ("GET", "/nowhere", 404),
    ]
    assert entries[0]["bytes"] > 0
    assert entries == sandbox.request_log()
