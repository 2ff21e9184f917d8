"""`Sandbox`: the whole local GHGA (WKVS, WPS, UCS, DCS, objects, hub) in one object.

Imports the sandbox's own modules and `snakemake_ghga.errors`. This is the
Python API for tests, the demo and the CLI: state lives in a directory and
survives restarts; `start()` serves everything on one 127.0.0.1 port.
"""

import json
import os
import secrets
import threading
import time
from pathlib import Path
from types import TracebackType

from snakemake_ghga.errors import ConfigError

from .context import ServiceContext
from .dcs import add_dcs_routes
from .faults import FaultInjector
from .http import Router, SandboxHttpServer
from .hub import Interrogator, load_or_create_hub_keys, outbox_key
from .objecthttp import add_object_routes
from .objects import FileObjectStore, ObjectStore
from .portal import (
    DEFAULT_BOX_MAX_SIZE_BYTES,
    create_download_package,
    create_upload_package,
)
from .records import (
    AccessionInfo,
    BoxInfo,
    UploadInfo,
    accession_info,
    upload_info,
)
from .requestlog import RequestLog, RequestLogEntry
from .s3 import S3ObjectStore
from .state import StateStore, read_or_create_secret, write_atomic
from .tokens import WorkOrderSigner
from .ucs import add_ucs_routes
from .wan import Link, WanModel
from .wps import add_wkvs_routes, add_wps_routes

__all__ = ["Sandbox"]

_STORE_CONFIG = "object_store.json"
_POLL_S = 0.05


def _recorded_endpoint(state_dir: Path, requested: str | None) -> str | None:
    """The S3 endpoint this state directory uses; record it on first use."""
    path = state_dir / _STORE_CONFIG
    if path.exists():
        recorded = json.loads(path.read_text(encoding="utf-8"))["s3_endpoint_url"]
        if requested is not None and requested != recorded:
            raise ConfigError(
                f"state directory {state_dir} keeps its objects in "
                f"{recorded or 'files'}, not in {requested}",
                "Use a new --state directory for another object store",
            )
        return recorded if isinstance(recorded, str) else None
    write_atomic(path, json.dumps({"s3_endpoint_url": requested}).encode())
    return requested


class Sandbox:
    """A strict local GHGA whose state lives in `state_dir`.

    Args:
        state_dir: created if missing; holds state.json, hub.sec/hub.pub,
            the WPS signing key, objects, wkvs_url and requests.jsonl.
        port: 0 picks a free port.
        url_ttl_s: lifetime of presigned URLs.
        stage_delay_s: how long the DCS answers 202 after the first request.
        fault_rate: probability of an injected fault per API/object request.
        seed: seed of the fault sequence.
        s3_endpoint_url: keep objects in this S3 instead of files in state_dir.
        box_max_size_bytes: size limit of upload boxes created from now on.
        latency_ms: WAN model: one round trip waited before every response.
        connection_mbps: WAN model: the rate of each connection, in Mbit/s
            (None: unlimited); bodies are paced both ways.
        total_mbps: WAN model: the rate all connections share (None: unlimited).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        port: int = 0,
        url_ttl_s: int = 3600,
        stage_delay_s: float = 0,
        fault_rate: float = 0.0,
        seed: int = 0,
        s3_endpoint_url: str | None = None,
        *,
        box_max_size_bytes: int = DEFAULT_BOX_MAX_SIZE_BYTES,
        latency_ms: float = 0.0,
        connection_mbps: float | None = None,
        total_mbps: float | None = None,
    ) -> None:
        self.wan = WanModel(latency_ms, connection_mbps, total_mbps)
        if self.wan.active and s3_endpoint_url is not None:
            raise ConfigError(
                "the WAN model cannot shape an external S3: object bodies "
                "would bypass it",
                "Leave out --s3-endpoint-url to model a slow link",
            )
        self.state_dir = Path(state_dir)
        self._state = StateStore(self.state_dir)
        self._port = port
        self._faults = FaultInjector(fault_rate, seed)
        self._box_max_size_bytes = box_max_size_bytes
        self._hub = load_or_create_hub_keys(self.state_dir)
        self._store = self._make_store(s3_endpoint_url, url_ttl_s)
        self._interrogator = Interrogator(self._state, self._store, self._hub)
        self._ctx = self._context(stage_delay_s, url_ttl_s)
        self._log = RequestLog(self.state_dir / "requests.jsonl")
        self._server: SandboxHttpServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Sandbox({self.state_dir}, running={self._server is not None})"

    def _make_store(self, s3_endpoint_url: str | None, url_ttl_s: int) -> ObjectStore:
        endpoint = _recorded_endpoint(self.state_dir, s3_endpoint_url)
        if endpoint is not None:
            return S3ObjectStore(endpoint, self.state_dir / "tmp", url_ttl_s)
        signing_key = read_or_create_secret(
            self.state_dir / "object_signing.key", lambda: secrets.token_bytes(32)
        )
        return FileObjectStore(self.state_dir, signing_key, url_ttl_s)

    def _context(self, stage_delay_s: float, url_ttl_s: int) -> ServiceContext:
        return ServiceContext(
            state=self._state,
            signer=WorkOrderSigner(self.state_dir / "wps_signing_key.pem"),
            store=self._store,
            interrogator=self._interrogator,
            hub_public_key=self._hub.public_key,
            stage_delay_s=stage_delay_s,
            url_ttl_s=url_ttl_s,
        )

    def _router(self) -> Router:
        router = Router()
        add_wkvs_routes(router, self._ctx)
        add_wps_routes(router, self._ctx)
        add_ucs_routes(router, self._ctx)
        add_dcs_routes(router, self._ctx)
        if isinstance(self._store, FileObjectStore):
            add_object_routes(router, self._store)
        return router

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> "Sandbox":
        """Bind 127.0.0.1:port, serve in a thread, and write DIR/wkvs_url."""
        if self._server is not None:
            return self
        if isinstance(self._store, S3ObjectStore):
            self._store.ensure_bucket()
        link = Link(self.wan) if self.wan.active else None
        server = SandboxHttpServer(
            self._port, self._router(), self._faults, self._log, link
        )
        if isinstance(self._store, FileObjectStore):
            self._store.base_url = server.base_url
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-http",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        write_atomic(self.state_dir / "wkvs_url", f"{self.wkvs_url}\n".encode())
        self._interrogator.resume()
        return self

    def stop(self) -> None:
        """Stop serving, close connections, and finish queued interrogations."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._interrogator.shutdown()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and keys ---------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` while running."""
        if self._server is None:
            raise ConfigError("the sandbox is not running", "Call start() first")
        return self._server.base_url

    @property
    def wkvs_url(self) -> str:
        """The WKVS root to give a client: `http://127.0.0.1:PORT/.well-known`."""
        return f"{self.base_url}/.well-known"

    @property
    def hub_public_key(self) -> bytes:
        """The Data Hub's Crypt4GH public key (also in DIR/hub.pub)."""
        return self._hub.public_key

    # -- the portal's part ----------------------------------------------------

    def upload_token(self, user_public_key: bytes, *, new_box: bool = False) -> str:
        """An upload work package token, `<wp_id>:<base64>`, for the default box."""
        return create_upload_package(
            self._state,
            user_public_key,
            new_box=new_box,
            box_max_size_bytes=self._box_max_size_bytes,
        )

    def download_token(
        self, user_public_key: bytes, accessions: list[str] | None = None
    ) -> str:
        """A download work package token for some (default: all) accessions."""
        return create_download_package(self._state, user_public_key, accessions)

    def add_file(self, path: str | os.PathLike[str]) -> str:
        """Archive a plaintext file directly as a new accession; return it."""
        return self._interrogator.add_file(Path(path))

    def remove_accession(self, accession: str) -> None:
        """Forget an archived file and delete its ciphertext, to free space.

        Raises:
            KeyError: no such accession.
        """
        with self._state.transaction() as state:
            record = state["accessions"].pop(accession)
        self._store.delete_object(outbox_key(record["file_id"]))

    # -- inspection -----------------------------------------------------------

    def boxes(self) -> list[BoxInfo]:
        """Every upload box."""
        state = self._state.snapshot()
        return [
            BoxInfo(b["id"], b["rdub_id"], b["max_size_bytes"])
            for b in state["boxes"].values()
        ]

    def uploads(self) -> list[UploadInfo]:
        """Every file upload, oldest first."""
        records = sorted(
            self._state.snapshot()["uploads"].values(), key=lambda u: u["created"]
        )
        return [upload_info(u) for u in records]

    def accessions(self) -> list[AccessionInfo]:
        """Every registered accession, in order of registration."""
        records = self._state.snapshot()["accessions"].values()
        return [
            accession_info(a) for a in sorted(records, key=lambda a: a["accession"])
        ]

    def request_log(self) -> list[RequestLogEntry]:
        """Every request logged in DIR/requests.jsonl so far."""
        return self._log.entries()

    def wait_interrogated(self, alias: str, timeout_s: float = 30.0) -> UploadInfo:
        """Wait until the newest upload of `alias` is interrogated or failed.

        Raises:
            TimeoutError: not settled within timeout_s.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            matching = [
                u for u in self.uploads() if u.alias == alias and u.state != "cancelled"
            ]
            if matching and matching[-1].state in ("interrogated", "failed"):
                return matching[-1]
            if time.monotonic() > deadline:
                states = [u.state for u in matching]
                raise TimeoutError(
                    f"upload {alias!r} not settled after {timeout_s} s "
                    f"(states: {states})"
                )
            time.sleep(_POLL_S)
