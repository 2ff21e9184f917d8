"""A hostile or broken server (issue 13, points 4-7), driven through a real proxy.

`ghga-transfer` runs as a child against the sandbox behind `HostileProxy`,
which rewrites chosen answers: names that leave the output directory,
malformed sizes, headers and envelopes, a missing checksum, a short size,
misplaced ranges, a PUT without an ETag and a 200 for a whole-object range.
Every malformed value must end only its own file, in one line, and the
summary must follow; nothing unverified may be reported as verified.
"""

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import TransferConfig
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.ghga.models import shown
from snakemake_ghga.transfer.context import DownloadResult
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE
from tests.reliability.harness import MiB, World, file_sha256, random_file
from tests.reliability.test_bad_inputs import CliResult, upload
from tests.support.hostile_server import Exchange, HostileProxy


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    running = World.start(tmp_path_factory.mktemp("hostile"))
    yield running
    running.stop()


@pytest.fixture
def proxy(world: World) -> Iterator[HostileProxy]:
    with HostileProxy(world.sandbox.base_url) as running:
        yield running


def _archived(world: World, tmp_path: Path, name: str, size: int) -> tuple[str, Path]:
    source = random_file(tmp_path / "src" / name, size)
    return world.archive(source), source


def _download(
    world: World,
    proxy: HostileProxy,
    accessions: list[str],
    out: Path,
    *extra: str,
    verbose: bool = False,
    token: Path | None = None,
) -> CliResult:
    """`ghga-transfer download` through the proxy (quiet: failures and summary)."""
    token = token or world.token_file("download", accessions)
    argv = world.argv(
        "download", *extra, "--output-dir", str(out), token_file=token, verbose=verbose
    )
    argv[argv.index("--wkvs-url") + 1] = proxy.url_for(world.sandbox.wkvs_url)
    return world.run(argv, timeout_s=300)


def _failure_lines(done: CliResult) -> list[str]:
    """stderr lines; no traceback, and the summary line was printed."""
    assert "Traceback" not in done.stderr, done.stderr
    assert "summary:" in done.stdout, (done.stdout, done.stderr)
    return [line for line in done.stderr.splitlines() if line.strip()]


def _summary(done: CliResult) -> str:
    return next(line for line in done.stdout.splitlines() if "summary:" in line)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _json_rewrite(change: dict[str, object]) -> Callable[[Exchange], None]:
    """Update fields of a 200's JSON object body."""

    def rewrite(exchange: Exchange) -> None:
        if exchange.status == 200:
            body = json.loads(exchange.body)
            body.update(change)
            exchange.set_body(json.dumps(body).encode())

    return rewrite


# -- point 4: names that leave the output directory ------------------------


def _sent_path(method: str, url: str) -> str:
    """The path `requests` puts on the wire for ``url`` (dot segments removed)."""
    prepared = requests.Request(method, url).prepare()
    assert prepared.path_url is not None
    return prepared.path_url


def _pose_as(
    world: World, proxy: HostileProxy, package: str, fake: str, real: str
) -> None:
    """Serve the real file ``real`` wherever the client asks for ``fake``."""
    base = world.sandbox.base_url
    for method, path in (
        ("POST", f"/wps/work-packages/{package}/files/{{}}/work-order-tokens"),
        ("GET", "/dcs/objects/{}/envelopes"),
        ("GET", "/dcs/objects/{}"),
    ):
        sent = _sent_path(method, base + path.format(fake))
        proxy.map_path(sent, _sent_path(method, base + path.format(real)))


def test_names_leaving_the_output_dir_fail_alone(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    good, good_source = _archived(world, tmp_path, "good.bin", 100_000)
    real, _ = _archived(world, tmp_path, "real.bin", 100_000)
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = {"../escaped": ".txt", str(outside / "absolute"): ".txt"}
    token = world.token_file("download", [good, real])
    package = token.read_text().split(":")[0]
    for fake in hostile:
        _pose_as(world, proxy, package, fake, real)

    def add_hostile_files(exchange: Exchange) -> None:
        body = json.loads(exchange.body)
        body["files"] = {good: ".bin", **hostile}
        exchange.set_body(json.dumps(body).encode())

    proxy.on("GET", r"^/wps/work-packages/[^/]+$", add_hostile_files)
    out = tmp_path / "work" / "out"
    done = _download(world, proxy, [], out, token=token)

    lines = _failure_lines(done)
    assert done.returncode == 1
    assert _summary(done) == "summary: 1 downloaded, 0 skipped, 2 failed"
    assert len(lines) == 2, lines
    for fake in hostile:
        [line] = [line for line in lines if line.startswith(f"failed {shown(fake)}: ")]
        assert "not a plain file name" in line
    assert _files(tmp_path / "work") == ["out"]  # nothing beside out/
    assert _files(outside) == []
    assert _files(out) == [f"{good}.bin"]
    assert file_sha256(out / f"{good}.bin") == file_sha256(good_source)


# -- point 5: malformed values end only their own file ----------------------


def _small_key_envelope(world: World) -> bytes:
    """A valid header for the user whose data key is 16 bytes, not 32."""
    writer_secret, _ = keys.generate_key_pair()
    return crypt.make_header(os.urandom(16), writer_secret, world.public_key)


@pytest.mark.parametrize(
    ("malformation", "cause"),
    [
        pytest.param(
            "drs_size_2_64",
            "field 'size' (18446744073709551616) is not a plausible",
            id="drs-size-2**64",
        ),
        pytest.param(
            "data_key_16_bytes", "data key is not 32 bytes long", id="data-key-16-bytes"
        ),
        pytest.param(
            "drs_sha256_not_hex", "is not 64 hex digits", id="drs-sha256-not-hex"
        ),
    ],
)
def test_a_malformed_value_fails_its_file_only(
    world: World, proxy: HostileProxy, tmp_path: Path, malformation: str, cause: str
) -> None:
    good, good_source = _archived(world, tmp_path, "good.bin", 200_000)
    bad, _ = _archived(world, tmp_path, "bad.bin", 200_000)
    if malformation == "drs_size_2_64":
        proxy.on("GET", rf"/dcs/objects/{bad}$", _json_rewrite({"size": 2**64}))
    elif malformation == "drs_sha256_not_hex":
        checksums = [{"type": "sha-256", "checksum": "not-a-digest"}]
        proxy.on(
            "GET", rf"/dcs/objects/{bad}$", _json_rewrite({"checksums": checksums})
        )
    else:
        envelope = base64.b64encode(_small_key_envelope(world))
        proxy.on(
            "GET",
            rf"/dcs/objects/{bad}/envelopes$",
            lambda exchange: exchange.set_body(json.dumps(envelope.decode()).encode()),
        )
    out = tmp_path / "out"
    done = _download(world, proxy, [good, bad], out)

    [line] = _failure_lines(done)
    assert line.startswith(f"failed {bad}: ") and cause in line, line
    assert done.returncode == 1
    assert _summary(done) == "summary: 1 downloaded, 0 skipped, 1 failed"
    assert _files(out) == [f"{good}.bin"]  # no temp file or journal is left either
    assert file_sha256(out / f"{good}.bin") == file_sha256(good_source)


def test_repeated_equal_content_length_is_read_as_one(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    accession, source = _archived(world, tmp_path, "f.bin", 7 * MiB)

    def repeat_length(exchange: Exchange) -> None:
        length = exchange.header("Content-Length")
        assert length is not None
        exchange.headers.append(("Content-Length", length))

    proxy.on("GET", r"^/s3/", repeat_length)
    out = tmp_path / "out"
    done = _download(world, proxy, [accession], out)

    assert done.returncode == 0, done.stderr
    assert file_sha256(out / f"{accession}.bin") == file_sha256(source)


# -- point 6: nothing unverified is reported as verified --------------------


def test_missing_sha256_fails_the_file_unless_allowed(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    accession, source = _archived(world, tmp_path, "f.bin", 300_000)
    proxy.on("GET", rf"/dcs/objects/{accession}$", _json_rewrite({"checksums": []}))

    refused = _download(world, proxy, [accession], tmp_path / "out")

    [line] = _failure_lines(refused)
    assert line.startswith(f"failed {accession}: the archive gave no SHA-256")
    assert "--allow-unverified" in line
    assert _files(tmp_path / "out") == []

    allowed = _download(
        world, proxy, [accession], tmp_path / "out", "--allow-unverified", verbose=True
    )

    assert allowed.returncode == 0, allowed.stderr
    assert "verified" in allowed.stdout
    [result] = [line for line in allowed.stdout.splitlines() if accession in line]
    assert "NOT verified: no SHA-256" in result
    assert "SHA-256 verified" not in result
    assert file_sha256(tmp_path / "out" / f"{accession}.bin") == file_sha256(source)


@pytest.mark.parametrize("checksum", ["given", "missing"])
def test_a_short_drs_size_is_caught_by_the_object_size(
    world: World, proxy: HostileProxy, tmp_path: Path, checksum: str
) -> None:
    # Crypt4GH has no end marker: a size one segment short would decrypt to
    # a plausible, truncated file; the object store's total size shows it
    accession, _ = _archived(world, tmp_path, "f.bin", 12 * MiB)
    size = crypt.encrypted_size(12 * MiB) - crypt.HEADER_SIZE
    change: dict[str, object] = {"size": size - CIPHER_SEGMENT_SIZE}
    extra = ("--allow-unverified",) if checksum == "missing" else ()
    if checksum == "missing":
        change["checksums"] = []
    proxy.on("GET", rf"/dcs/objects/{accession}$", _json_rewrite(change))

    done = _download(world, proxy, [accession], tmp_path / "out", *extra)

    [line] = _failure_lines(done)
    assert line.startswith(
        f"failed {accession}: the object store holds {size} bytes of ciphertext, "
        f"the archive said {size - CIPHER_SEGMENT_SIZE}"
    ), line
    assert _files(tmp_path / "out") == []


# -- point 7: every response is checked -------------------------------------


def test_a_misplaced_range_is_fetched_again(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    # whole segments from the wrong offset pass their MAC (random nonces, no
    # associated data); an honest Content-Range is all that shows it
    accession, source = _archived(world, tmp_path, "f.bin", 12 * MiB)
    misplaced: list[str] = []
    lock = threading.Lock()

    def misplace_once(exchange: Exchange) -> None:
        answered = exchange.header("Content-Range") or ""
        first, rest = answered.removeprefix("bytes ").split("-")
        last, total = rest.split("/")
        with lock:
            if int(first) == 0 or misplaced:
                return
            misplaced.append(answered)
        length = int(last) - int(first) + 1
        headers = {"Range": f"bytes=0-{length - 1}"}
        status, _, body = proxy.fetch("GET", exchange.path, headers)
        assert status == 206
        exchange.set_body(body)
        exchange.set_header("Content-Range", f"bytes 0-{length - 1}/{total}")

    proxy.on("GET", r"^/s3/", misplace_once)
    out = tmp_path / "out"
    done = _download(world, proxy, [accession], out)

    assert misplaced, "no range was misplaced; the test proved nothing"
    assert done.returncode == 0, done.stderr
    assert file_sha256(out / f"{accession}.bin") == file_sha256(source)


def test_a_200_for_a_whole_object_range_is_taken(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    accession, source = _archived(world, tmp_path, "f.bin", 1 * MiB)
    answered: list[int] = []

    def whole_as_200(exchange: Exchange) -> None:
        assert exchange.status == 206
        exchange.status = 200
        exchange.set_header("Content-Range", None)
        answered.append(200)

    proxy.on("GET", r"^/s3/", whole_as_200)
    out = tmp_path / "out"
    done = _download(world, proxy, [accession], out)

    assert answered == [200]
    assert done.returncode == 0, done.stderr
    assert file_sha256(out / f"{accession}.bin") == file_sha256(source)


def test_a_part_put_answered_without_etag_fails_the_upload(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "up.bin", 2 * MiB)
    proxy.on("PUT", r"^/s3/", lambda exchange: exchange.set_header("ETag", None))

    done = upload(
        world,
        str(source),
        "--alias",
        "no-etag.bin",
        tmp_dir=tmp_path / "tmp",
        replace={"--wkvs-url": proxy.url_for(world.sandbox.wkvs_url)},
    )

    [line] = _failure_lines(done)
    assert done.returncode == 1
    assert line.startswith("failed no-etag.bin: ") and "without an ETag" in line, line
    assert _summary(done) == "summary: 0 uploaded, 0 skipped, 1 failed"


def test_a_huge_retry_after_ends_at_the_staging_timeout(
    world: World, proxy: HostileProxy, tmp_path: Path
) -> None:
    accession, _ = _archived(world, tmp_path, "f.bin", 1000)

    def staging_for_days(exchange: Exchange) -> None:
        exchange.status = 202
        exchange.set_header("Retry-After", str(10**9))
        exchange.set_body(b"null")

    proxy.on("GET", rf"/dcs/objects/{accession}$", staging_for_days)
    token = world.sandbox.download_token(world.public_key, [accession])
    secret = keys.load_private_key(world.secret_path)
    results: list[list[DownloadResult]] = []
    with GhgaClient(
        wkvs_url=proxy.url_for(world.sandbox.wkvs_url),
        token=token,
        my_secret_key=secret,
        my_public_key=world.public_key,
        config=TransferConfig(staging_timeout_s=1.0),
    ) as client:
        runner = threading.Thread(
            target=lambda: results.append(
                client.download([accession], tmp_path / "out")
            ),
            daemon=True,
        )
        runner.start()
        runner.join(timeout=30)
        assert not runner.is_alive(), "the client slept for the server's Retry-After"
    [[result]] = results
    assert result.status == "failed"
    assert "still being staged after 1 s" in (result.error or "")
