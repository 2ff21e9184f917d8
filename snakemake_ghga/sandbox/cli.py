"""The `ghga-transfer sandbox …` commands: serve, token upload/download, ls, add.

Imports argparse, `snakemake_ghga.crypt4gh.keys`/`crypt`/`errors` and the sandbox's
`app`. `register(subparsers)` adds the `sandbox` command to the main parser;
each subcommand sets `handler=<func(args) -> int>`. Handlers print results on
stdout and raise GhgaError for the main CLI to report.
"""

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import ConfigError

from .records import DEFAULT_BOX_MAX_SIZE_BYTES

if TYPE_CHECKING:
    from .app import Sandbox

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["register"]


def _sandbox_class() -> "type[Sandbox]":
    """The server class, imported only when a sandbox command runs (boto3 is slow)."""
    from .app import Sandbox

    return Sandbox


def register(subparsers: "Subparsers") -> None:
    """Add the `sandbox` command and its subcommands to the main parser."""
    sandbox = subparsers.add_parser(
        "sandbox",
        help="a strict local GHGA for tests, demos and offline workflows",
        description="A local GHGA (WKVS, WPS, UCS, DCS, object store, Data Hub) "
        "that the official ghga-connector accepts unchanged.",
    )
    commands = sandbox.add_subparsers(
        dest="sandbox_command", metavar="COMMAND", required=True
    )
    _add_serve(commands)
    _add_token(commands)
    ls = commands.add_parser("ls", help="list boxes, uploads and accessions")
    _state_arg(ls)
    ls.set_defaults(handler=_ls)
    add = commands.add_parser(
        "add", help="archive plaintext files directly as accessions (for downloads)"
    )
    _state_arg(add)
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add.set_defaults(handler=_add)


def _state_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        required=True,
        type=Path,
        metavar="DIR",
        help="the sandbox's state directory",
    )


def _add_serve(commands: "Subparsers") -> None:
    serve = commands.add_parser(
        "serve", help="serve WKVS, WPS, UCS, DCS and the object store on 127.0.0.1"
    )
    _state_arg(serve)
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--url-ttl",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of presigned URLs (default 3600)",
    )
    serve.add_argument(
        "--stage-delay",
        type=float,
        default=0,
        metavar="SECONDS",
        help="answer 202 + Retry-After this long per file (default 0)",
    )
    _add_storage_options(serve)
    _add_fault_options(serve)
    _add_wan_options(serve)
    serve.set_defaults(handler=_serve)


def _add_storage_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        help="keep objects in this S3 (AWS_* variables for credentials)",
    )
    serve.add_argument(
        "--box-max-size",
        type=int,
        default=DEFAULT_BOX_MAX_SIZE_BYTES,
        metavar="BYTES",
        help="size limit of new upload boxes",
    )


def _add_fault_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="probability of an injected 503 or cut transfer",
    )
    serve.add_argument("--seed", type=int, default=0, help="seed of the faults")


def _add_wan_options(serve: argparse.ArgumentParser) -> None:
    wan = serve.add_argument_group(
        "WAN model", "make the loopback link look like a slow, far network"
    )
    wan.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="one round trip waited before every response (default 0)",
    )
    wan.add_argument(
        "--connection-mbps",
        type=float,
        metavar="R",
        help="pace each connection's bodies, both ways, to R Mbit/s "
        "(default unlimited)",
    )
    wan.add_argument(
        "--total-mbps",
        type=float,
        metavar="R",
        help="pace all connections together to R Mbit/s (default unlimited)",
    )


def _add_token(commands: "Subparsers") -> None:
    token = commands.add_parser(
        "token", help="print a work package token as the Data Portal shows it"
    )
    kinds = token.add_subparsers(dest="token_kind", metavar="KIND", required=True)
    upload = kinds.add_parser("upload", help="a token to upload into the sandbox")
    download = kinds.add_parser("download", help="a token to download accessions")
    for parser in (upload, download):
        _state_arg(parser)
        parser.add_argument(
            "--user-public-key",
            required=True,
            type=Path,
            metavar="KEY.pub",
            help="the user's Crypt4GH public key",
        )
    upload.add_argument(
        "--new-box",
        action="store_true",
        help="use a new upload box instead of the default one",
    )
    upload.set_defaults(handler=_token_upload)
    download.add_argument(
        "accessions",
        nargs="*",
        metavar="ACCESSION",
        help="default: every registered accession",
    )
    download.set_defaults(handler=_token_download)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(args: argparse.Namespace) -> int:
    if not 0.0 <= args.fault_rate <= 1.0:
        raise ConfigError(f"--fault-rate must be within [0, 1], got {args.fault_rate}")
    sandbox = _sandbox_class()(
        args.state,
        port=args.port,
        url_ttl_s=args.url_ttl,
        stage_delay_s=args.stage_delay,
        fault_rate=args.fault_rate,
        seed=args.seed,
        s3_endpoint_url=args.s3_endpoint_url,
        box_max_size_bytes=args.box_max_size,
        latency_ms=args.latency_ms,
        connection_mbps=args.connection_mbps,
        total_mbps=args.total_mbps,
    )
    with sandbox:
        print(sandbox.wkvs_url, flush=True)
        if sandbox.wan.active:
            print(sandbox.wan.describe(), file=sys.stderr, flush=True)
        _wait_for_signal()
    return 0


def _token_upload(args: argparse.Namespace) -> int:
    user_key = keys.load_public_key(args.user_public_key)
    print(_sandbox_class()(args.state).upload_token(user_key, new_box=args.new_box))
    return 0


def _token_download(args: argparse.Namespace) -> int:
    user_key = keys.load_public_key(args.user_public_key)
    print(
        _sandbox_class()(args.state).download_token(user_key, args.accessions or None)
    )
    return 0


def _existing_state(state_dir: Path) -> "Sandbox":
    if not (state_dir / "hub.pub").is_file():
        raise ConfigError(
            f"no sandbox state in {state_dir}",
            "Start one with `ghga-transfer sandbox serve --state DIR`",
        )
    return _sandbox_class()(state_dir)


def _ls(args: argparse.Namespace) -> int:
    sandbox = _existing_state(args.state)
    for box in sandbox.boxes():
        print(
            f"BOX\t{box.id}\trdub={box.research_data_upload_box_id}\t"
            f"max_size={box.max_size_bytes}"
        )
    for upload in sandbox.uploads():
        print(
            f"UPLOAD\t{upload.id}\t{upload.state}\t{upload.alias}\t"
            f"size={upload.decrypted_size}\taccession={upload.accession or '-'}"
            + (f"\treason={upload.failure_reason}" if upload.failure_reason else "")
        )
    for accession in sandbox.accessions():
        print(
            f"ACCESSION\t{accession.accession}\t{accession.name}\t"
            f"size={accession.decrypted_size}\tsha256={accession.decrypted_sha256}"
        )
    return 0


def _add(args: argparse.Namespace) -> int:
    for path in args.files:
        crypt.check_plaintext_input(path)
    sandbox = _sandbox_class()(args.state)
    for path in args.files:
        print(f"{sandbox.add_file(path)}\t{path}", flush=True)
    return 0
