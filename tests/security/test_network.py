"""The network path: https only (loopback excepted), and part transfers through proxies."""

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests_mock
import urllib3
from nacl.public import PrivateKey, PublicKey, SealedBox

from snakemake_ghga.cli import main
from snakemake_ghga.config import MiB, TransferConfig, url_refusal
from snakemake_ghga.errors import ApiError, ConfigError, PartFailedError
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.ghga.token import WorkPackageToken
from snakemake_ghga.redact import redact_text
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.engine import TransferEngine
from snakemake_ghga.transfer.parts import Part
from snakemake_ghga.transfer.proxies import ProxyRoutes
from tests.conftest import KeyPair
from tests.integration.conftest import cli_args, random_file
from tests.support.signals import default_signals
from tests.unit.test_transfer import FakePool, FakeResponse, Sink

PACKAGE = "11111111-2222-4333-8444-555555555555"

# -- one URL policy: https, or plain http to loopback only ---------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://data.ghga.de/.well-known",
        "http://127.0.0.1:8080/.well-known",
        "http://127.3.2.1/x",
        "http://localhost:1/",
        "http://[::1]:1/",
    ],
)
def test_url_policy_accepts_https_and_loopback_http(url: str) -> None:
    assert url_refusal(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://data.ghga.de/.well-known", "plain http for data.ghga.de"),
        ("http://10.0.0.1/", "plain http for 10.0.0.1"),
        ("http://localhost.evil.test/", "plain http for localhost.evil.test"),
        ("ftp://data.ghga.de/", "not an https URL"),
        ("data.ghga.de/.well-known", "not an https URL"),
    ],
)
def test_url_policy_refuses_plain_http_elsewhere(url: str, why: str) -> None:
    refusal = url_refusal(url)

    assert refusal is not None and why in refusal


def test_cli_refuses_plain_http_wkvs_before_reading_the_token(
    user_keys: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "ls",
            "--wkvs-url",
            "http://data.ghga.de/.well-known",
            "--token-file",
            str(tmp_path / "no-such-token"),
            "--my-private-key",
            str(user_keys.secret_path),
            "--my-public-key",
            str(user_keys.public_path),
        ]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert "--wkvs-url http://data.ghga.de/.well-known uses plain http" in err
    assert "Use an https:// URL" in err


def _api() -> tuple[GhgaApi, PrivateKey]:
    user = PrivateKey.generate()
    sealed = SealedBox(PublicKey(bytes(user.public_key))).encrypt(b"t" * 24)
    token = WorkPackageToken(PACKAGE, base64.b64encode(sealed).decode())
    return GhgaApi("https://ghga.test/.well-known", token, bytes(user), "k"), user


@pytest.mark.parametrize("service", ["wps_api_url", "ucs_api_url", "dcs_api_url"])
def test_plain_http_service_url_from_the_wkvs_is_refused_before_any_request(
    service: str,
) -> None:
    """A WKVS (or whoever answers for it) cannot send the token over plain http."""
    values = {
        "wps_api_url": "https://ghga.test/wps",
        "ucs_api_url": "https://ghga.test/ucs",
        "dcs_api_url": "https://ghga.test/dcs",
        "crypt4gh_public_keys": {},
    }
    values[service] = "http://evil.test/api"
    api, _ = _api()
    with requests_mock.Mocker() as mock:
        mock.get(requests_mock.ANY, json={})  # the last registered matches first
        mock.get("https://ghga.test/.well-known/values", json=values)
        with pytest.raises(ApiError) as caught:
            api.work_package()

    assert f"{service} http://evil.test/api" in str(caught.value)
    assert "plain http for evil.test" in str(caught.value)
    assert [r.url for r in mock.request_history] == [
        "https://ghga.test/.well-known/values"
    ]


class _PlainHttpUrls:
    def url_for(self, part: Part) -> str:
        return "http://s3.evil.test/outbox/obj?X-Amz-Signature=secret"

    def invalidate(self, url: str) -> None:
        pass


def test_plain_http_presigned_url_fails_the_part_without_a_request() -> None:
    pool = FakePool([FakeResponse(206, b"x" * 100)])
    engine = TransferEngine(TransferConfig(max_workers=1), sleep=lambda _: None)
    engine.pool = pool  # type: ignore[assignment]

    with pytest.raises(PartFailedError) as caught:
        engine.get_part(
            "download of x",
            Part(1, 0, 100),
            _PlainHttpUrls(),
            Sink(100),
            threading.Event(),
            lambda _: None,
            100,
        )

    message = str(caught.value)
    assert "after 1 attempt(s)" in message
    assert "plain http for s3.evil.test" in message
    assert "secret" not in message
    assert pool.requests == []


# -- part transfers through a real proxy (tinyproxy) ----------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Tinyproxy:
    """A tinyproxy on a loopback port with its own config; stopped by PID."""

    def __init__(self, directory: Path, auth: tuple[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.log = directory / "tinyproxy.log"
        config = directory / "tinyproxy.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            f'LogFile "{self.log}"',
            "LogLevel Info",
            "MaxClients 32",
            "Allow 127.0.0.1",
        ]
        if auth:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        config.write_text("\n".join(lines) + "\n")
        binary = shutil.which("tinyproxy") or "/usr/sbin/tinyproxy"
        self.process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=default_signals,
        )
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, self.log.read_text()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                break
            assert time.monotonic() < deadline, "tinyproxy did not start"
            time.sleep(0.05)

    def requests(self, method: str, path: str) -> list[str]:
        """The request lines tinyproxy logged for ``method`` on URLs with ``path``."""
        pattern = re.compile(rf"Request .*: {method} http://[^/ ]+{re.escape(path)}")
        return [
            line for line in self.log.read_text().splitlines() if pattern.search(line)
        ]

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _tinyproxy_available() -> bool:
    found = shutil.which("tinyproxy") or Path("/usr/sbin/tinyproxy").exists()
    if not found and os.environ.get("CI") == "true":
        pytest.fail("tinyproxy is not installed (.ci/install-debian-packages)")
    return bool(found)


needs_tinyproxy = pytest.mark.skipif(
    not _tinyproxy_available(),
    reason="tinyproxy is not installed (run .ci/install-debian-packages as root); "
    "CI must have it",
)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    running = Tinyproxy(tmp_path / "proxy")
    yield running
    running.stop()


def _set_proxy(monkeypatch: pytest.MonkeyPatch, url: str, no_proxy: str) -> None:
    """Proxy everything, as a site with a mandatory proxy does."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, no_proxy)


def _round_trip(
    sandbox: Sandbox, keys: KeyPair, tmp_path: Path, *extra: str
) -> tuple[Path, Path]:
    """Upload one 11 MiB file (3 parts) by the CLI, archive it, download it."""
    source = random_file(tmp_path / "in", "p.bin", 11 * MiB)
    token = tmp_path / "token"
    token.write_text(sandbox.upload_token(keys.public))
    assert main(["upload", *cli_args(sandbox, keys, token), *extra, str(source)]) == 0
    info = sandbox.wait_interrogated("p.bin", timeout_s=120)
    assert info.accession is not None
    token.write_text(sandbox.download_token(keys.public, [info.accession]))
    out = tmp_path / "out"
    argv = ["download", info.accession, *cli_args(sandbox, keys, token)]
    assert main([*argv, *extra, "--output-dir", str(out)]) == 0
    return source, next(out.iterdir())


@needs_tinyproxy
def test_parts_go_through_the_proxy_the_environment_names(
    user_keys: KeyPair,
    tmp_path: Path,
    proxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Sandbox(tmp_path / "sandbox") as sandbox:
        _set_proxy(monkeypatch, f"http://127.0.0.1:{proxy.port}", "")
        source, output = _round_trip(sandbox, user_keys, tmp_path)

    assert output.read_bytes() == source.read_bytes()
    assert len(proxy.requests("PUT", "/s3/")) == 3  # every part PUT
    assert len(proxy.requests("GET", "/s3/")) >= 1  # and the ranged GETs
    assert proxy.requests("GET", "/.well-known/values")  # as the API calls did


@needs_tinyproxy
def test_no_proxy_sends_parts_direct(
    user_keys: KeyPair,
    tmp_path: Path,
    proxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Sandbox(tmp_path / "sandbox") as sandbox:
        _set_proxy(monkeypatch, f"http://127.0.0.1:{proxy.port}", "127.0.0.1")
        _round_trip(sandbox, user_keys, tmp_path)

    assert proxy.requests("PUT", "/s3/") == []
    assert proxy.requests("GET", "/") == []


@needs_tinyproxy
def test_proxy_credentials_are_sent_but_never_logged(
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "pr0xy-s3cret"
    proxy = Tinyproxy(tmp_path / "proxy", auth=("alice", secret))
    try:
        with Sandbox(tmp_path / "sandbox") as sandbox:
            url = f"http://alice:{secret}@127.0.0.1:{proxy.port}"
            _set_proxy(monkeypatch, url, "")
            _round_trip(sandbox, user_keys, tmp_path, "--quiet")
            main(["-v", "ls", *cli_args(sandbox, user_keys, tmp_path / "token")])
    finally:
        proxy.stop()

    assert len(proxy.requests("PUT", "/s3/")) == 3  # authenticated: tinyproxy let them
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err


def test_proxy_routes_choose_as_requests_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://u:p@proxy.test:3128")
    monkeypatch.setenv("HTTP_PROXY", "plain.test:8080")
    monkeypatch.setenv("NO_PROXY", "direct.test,10.0.0.0/8")
    routes = ProxyRoutes(num_pools=2, maxsize=3, block=True)

    via_https = routes.pool_for("https://s3.test/bucket/key?sig=1")
    via_http = routes.pool_for("http://s3.test/bucket/key")

    assert isinstance(via_https, urllib3.ProxyManager)
    assert via_https.proxy is not None and via_https.proxy.host == "proxy.test"
    assert via_https.proxy_headers["proxy-authorization"].startswith("Basic ")
    assert isinstance(via_http, urllib3.ProxyManager)
    assert via_http.proxy is not None and via_http.proxy.url == "http://plain.test:8080"
    for direct in ("https://direct.test/x", "https://10.1.2.3/x"):
        assert not isinstance(routes.pool_for(direct), urllib3.ProxyManager)
    assert routes.pool_for("https://other.test/y") is via_https  # one pool per proxy
    assert via_https.connection_pool_kw["maxsize"] == 3


def test_a_socks_proxy_for_parts_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match="not an http\\(s\\) proxy"):
        ProxyRoutes().pool_for("https://s3.test/x")


def test_proxy_credentials_are_redacted_from_messages() -> None:
    text = "cannot reach http://alice:pr0xy-s3cret@proxy.test:3128 (ProxyError)"

    assert (
        redact_text(text)
        == "cannot reach http://<redacted>@proxy.test:3128 (ProxyError)"
    )
