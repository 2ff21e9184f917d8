"""`ghga-transfer`: argument parsing, exit codes and messages; layer 5.

The only place that prints. Every command returns 0 only if every file
succeeded; a GhgaError becomes one line on stderr (exit 1, or 2 for a
configuration error) instead of a traceback.
"""

import argparse
import importlib.util
import logging
import sys
from collections.abc import Sequence

from snakemake_ghga import __version__
from snakemake_ghga.errors import ConfigError, GhgaError
from snakemake_ghga.redact import redact_text

from . import crypt_commands

__all__ = ["build_parser", "main"]

logger = logging.getLogger("snakemake_ghga")


def _register_optional(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    """Add the transfer and sandbox commands (the sandbox needs its extra)."""
    if importlib.util.find_spec("snakemake_ghga.cli.transfer_commands"):
        from . import transfer_commands  # type: ignore[attr-defined,unused-ignore]

        transfer_commands.register(subparsers)
    try:
        from snakemake_ghga.sandbox import cli as sandbox_cli  # type: ignore[attr-defined,unused-ignore]
    except ImportError as err:
        missing = str(err)
        stub = subparsers.add_parser(
            "sandbox", help="a local GHGA (needs the [sandbox] extra)"
        )
        stub.set_defaults(handler=lambda _args: _missing_extra(missing))
    else:
        sandbox_cli.register(subparsers)


def _missing_extra(detail: str) -> int:
    raise ConfigError(
        f"the sandbox is not installed ({detail})",
        "Install it with `pip install 'snakemake-storage-plugin-ghga[sandbox]'`",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full `ghga-transfer` parser."""
    parser = argparse.ArgumentParser(
        prog="ghga-transfer",
        description="Encrypt, upload, download and decrypt GHGA files.",
    )
    parser.add_argument(
        "--version", action="version", version=f"ghga-transfer {__version__}"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each part")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    crypt_commands.register(subparsers)
    _register_optional(subparsers)
    return parser


def _configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ghga-transfer` and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet, args.verbose)
    try:
        return int(args.handler(args))
    except ConfigError as err:
        print(f"error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    except GhgaError as err:
        print(f"error: {redact_text(str(err))}", file=sys.stderr)
        return 1
    except OSError as err:  # a local failure no lower layer anticipated
        print(f"error: {err.strerror or err}: {err.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
