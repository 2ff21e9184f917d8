"""`ghga-transfer encrypt` and `decrypt`: local Crypt4GH files, one line per file."""

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import ConfigError, GhgaError, InputFileError
from snakemake_ghga.redact import redact_text

__all__ = ["add_key_options", "register", "report_failure", "run_per_file"]


def add_key_options(
    parser: argparse.ArgumentParser, *, public: bool = True, private: bool = True
) -> None:
    """Add --my-private-key / --my-public-key with the official defaults."""
    if private:
        parser.add_argument(
            "--my-private-key",
            type=Path,
            default=Path(os.environ.get("GHGA_MY_PRIVATE_KEY", "key.sec")),
            help="your Crypt4GH private key (env GHGA_MY_PRIVATE_KEY; default "
            "./key.sec); its passphrase comes from C4GH_PASSPHRASE",
        )
    if public:
        parser.add_argument(
            "--my-public-key",
            type=Path,
            default=Path(os.environ.get("GHGA_MY_PUBLIC_KEY", "key.pub")),
            help="your Crypt4GH public key (env GHGA_MY_PUBLIC_KEY; default ./key.pub)",
        )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", type=Path, help="default: beside each input")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs"
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=2,
        help="threads for the segment cipher (default 2)",
    )


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the encrypt and decrypt commands."""
    enc = subparsers.add_parser("encrypt", help="encrypt files to FILE.c4gh")
    enc.add_argument(
        "--recipient-public-key",
        type=Path,
        required=True,
        help="the reader's public key (e.g. the GHGA Data Hub's)",
    )
    add_key_options(enc, public=False)
    _add_output_options(enc)
    enc.add_argument("files", nargs="+", type=Path, metavar="FILE")
    enc.set_defaults(handler=run_encrypt)
    dec = subparsers.add_parser("decrypt", help="decrypt FILE.c4gh files")
    add_key_options(dec, public=False)
    _add_output_options(dec)
    dec.add_argument("files", nargs="+", type=Path, metavar="FILE.c4gh")
    dec.set_defaults(handler=run_decrypt)


def report_failure(name: object, err: GhgaError) -> None:
    """One stderr line for a file that failed."""
    print(f"FAILED {name}: {redact_text(str(err))}", file=sys.stderr)


def run_per_file(files: list[Path], action: Callable[[Path], str], verb: str) -> int:
    """Run action per file, print one line each and a summary; 0 if all passed."""
    failed = 0
    for path in files:
        try:
            print(action(path))
        except GhgaError as err:
            failed += 1
            report_failure(path, err)
    done = len(files) - failed
    print(f"{verb} {done} of {len(files)} file(s); {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1


def _output_path(
    source: Path, output_dir: Path | None, name: str, overwrite: bool
) -> Path:
    directory = output_dir if output_dir is not None else source.parent
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.exists() and not overwrite:
        raise InputFileError(
            f"output {target} already exists", "Pass --overwrite to replace it"
        )
    return target


def _check_workers(args: argparse.Namespace) -> None:
    if args.max_workers < 1:
        raise ConfigError(
            f"--max-workers must be at least 1, got {args.max_workers}",
            "Pass a positive number of threads",
        )


def run_encrypt(args: argparse.Namespace) -> int:
    """Encrypt each FILE to FILE.c4gh for the recipient."""
    _check_workers(args)
    recipient = keys.load_public_key(args.recipient_public_key)
    secret = keys.load_private_key(args.my_private_key)

    def encrypt_one(source: Path) -> str:
        crypt.check_plaintext_input(source)
        target = _output_path(
            source, args.output_dir, source.name + ".c4gh", args.overwrite
        )
        with crypt.private_output(target) as (_fd, temp):
            result = crypt.encrypt_file(
                source,
                temp,
                writer_secret_key=secret,
                recipient_public_key=recipient,
                workers=args.max_workers,
                hash_plaintext=False,
            )
        return f"encrypted {source} -> {target} ({result.encrypted_size} bytes)"

    return run_per_file(args.files, encrypt_one, "encrypted")


def run_decrypt(args: argparse.Namespace) -> int:
    """Decrypt each FILE.c4gh to FILE with the user's private key."""
    _check_workers(args)
    secret = keys.load_private_key(args.my_private_key)

    def decrypt_one(source: Path) -> str:
        if not source.is_file():
            raise InputFileError(f"{source} is not a file", "Check the path")
        if source.suffix != ".c4gh":
            raise InputFileError(
                f"{source} is not a .c4gh Crypt4GH file", "Pass files ending in .c4gh"
            )
        target = _output_path(source, args.output_dir, source.stem, args.overwrite)
        size = crypt.decrypt_file(source, target, secret, workers=args.max_workers)
        return f"decrypted {source} -> {target} ({size} bytes)"

    return run_per_file(args.files, decrypt_one, "decrypted")
