"""Requests per small file, counted in the sandbox's request log (issue 14).

A regression guard, not a timing test: every request below is one the
protocol requires (docs/design/parallelism.md, "Round trips per file"); a
change that adds one fails here. The counts are for default settings, so they
also hold while the engine adapts its concurrency.
"""

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import TransferConfig
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.sandbox.requestlog import RequestLogEntry
from snakemake_ghga.transfer.concurrency import FAR_START, NEAR_START
from tests.conftest import KeyPair

from .conftest import random_file

FILES = 8
SIZE = 128 * 1024
PART = 5 * 1024 * 1024

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


def test_a_big_upload_overlaps_part_urls_and_the_close_token_with_puts(
    sandbox_factory: Callable[..., Sandbox], user_keys: KeyPair, tmp_path: Path
) -> None:
    # paced to 100 Mbit/s, a 5 MiB PUT takes 0.4 s; a round trip 30 ms
    sandbox = sandbox_factory(latency_ms=30, connection_mbps=100)
    source = random_file(tmp_path, "big.bin", 4 * PART - 1000)  # > SOON_DONE_BYTES
    token = sandbox.upload_token(user_keys.public)
    config = TransferConfig(tmp_dir=tmp_path, max_workers=1, part_size_bytes=PART)
    with GhgaClient(
        wkvs_url=sandbox.wkvs_url,
        token=token,
        my_secret_key=user_keys.secret,
        my_public_key=user_keys.public,
        config=config,
    ) as client:
        [result] = client.upload([(source, "big.bin")])
    assert result.status == "uploaded"
    kinds = [_kind(entry) for entry in sandbox.request_log()]
    puts = [i for i, kind in enumerate(kinds) if kind == "put"]
    urls = [i for i, kind in enumerate(kinds) if kind == "part url"]
    assert len(puts) == len(urls) == 4
    # one slot: the second part's URL comes while the first part is sent
    assert urls[1] < puts[0]
    # the close's WOT is fetched while the last part is sent
    wots_after_create = [i for i, k in enumerate(kinds) if k == "wot" and i > urls[0]]
    assert wots_after_create and wots_after_create[-1] < puts[-1]
    assert kinds[-1] == "close" and kinds[-2] == "put"


def test_a_far_path_starts_with_more_parts_in_flight_than_a_near_one(
    sandbox_factory: Callable[..., Sandbox], user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path, "one.bin", SIZE)
    for latency_ms, expected in ((0, NEAR_START), (20, FAR_START)):
        sandbox = sandbox_factory(latency_ms=latency_ms)
        token = sandbox.upload_token(user_keys.public)
        with _client(sandbox, user_keys, token, tmp_path) as client:
            [result] = client.upload([(source, "one.bin")])
            assert result.status == "uploaded"
            assert client.engine.limiter.limit == expected  # one part: no probe
