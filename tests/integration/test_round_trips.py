"""Requests per small file, counted in the sandbox's request log (issue 14).

A regression guard, not a timing test: every request below is one the
protocol requires (docs/design/parallelism.md, "Round trips per file"); a
change that adds one fails here. The counts are for default settings, so they
also hold while the engine adapts its concurrency.
"""

from collections import Counter
from pathlib import Path

from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import TransferConfig
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.sandbox.requestlog import RequestLogEntry
from tests.conftest import KeyPair

from .conftest import random_file

FILES = 8
SIZE = 128 * 1024

UPLOAD_PER_RUN = {"wkvs": 1, "work package": 1, "wot": 1, "list": 1}
UPLOAD_PER_FILE = {"wot": 3, "create": 1, "part url": 1, "put": 1, "close": 1}
DOWNLOAD_PER_RUN = {"wkvs": 1, "work package": 1}
DOWNLOAD_PER_FILE = {"wot": 1, "drs": 1, "envelope": 1, "get": 1}


def _kind(entry: RequestLogEntry) -> str:
    method, path = entry["method"], entry["path"]
    if path.startswith("/.well-known"):
        return "wkvs"
    if path.startswith("/wps"):
        return "wot" if path.endswith("/work-order-tokens") else "work package"
    if path.startswith("/ucs"):
        if "/parts/" in path:
            return "part url"
        kinds = {"GET": "list", "POST": "create", "PATCH": "close"}
        return kinds.get(method, f"{method} ucs")
    if path.startswith("/dcs"):
        return "envelope" if path.endswith("/envelopes") else "drs"
    return {"PUT": "put", "GET": "get"}.get(method, f"{method} {path}")


def _expected(per_run: dict[str, int], per_file: dict[str, int]) -> Counter[str]:
    counts = Counter(per_run)
    counts.update({kind: count * FILES for kind, count in per_file.items()})
    return counts


def _client(sandbox: Sandbox, keys: KeyPair, token: str, tmp: Path) -> GhgaClient:
    return GhgaClient(
        wkvs_url=sandbox.wkvs_url,
        token=token,
        my_secret_key=keys.secret,
        my_public_key=keys.public,
        config=TransferConfig(tmp_dir=tmp),  # defaults: adaptive, auto part size
    )


def test_requests_per_small_file_up_and_down_are_the_required_ones(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    files = [random_file(tmp_path / "in", f"s{i}.bin", SIZE) for i in range(FILES)]
    (tmp_path / "tmp").mkdir()
    token = sandbox.upload_token(user_keys.public)
    with _client(sandbox, user_keys, token, tmp_path / "tmp") as client:
        results = client.upload([(path, path.name) for path in files])
    assert {r.status for r in results} == {"uploaded"}
    log = sandbox.request_log()
    assert Counter(map(_kind, log)) == _expected(UPLOAD_PER_RUN, UPLOAD_PER_FILE)

    accessions = [sandbox.add_file(path) for path in files]
    mark = len(sandbox.request_log())
    token = sandbox.download_token(user_keys.public, accessions)
    with _client(sandbox, user_keys, token, tmp_path / "tmp") as client:
        results = client.download(accessions, tmp_path / "out")
    assert {r.status for r in results} == {"downloaded"}
    log = sandbox.request_log()[mark:]
    assert Counter(map(_kind, log)) == _expected(DOWNLOAD_PER_RUN, DOWNLOAD_PER_FILE)
