"""Loading, checking and writing Crypt4GH key files; layer 1 (errors, private_files).

Parsing is the `crypt4gh` library's: c4gh-v1 private keys with the `none`,
`scrypt`, `bcrypt` and `pbkdf2_hmac_sha256` KDFs, and OpenSSH ed25519 keys.
We add what it lacks: one-line errors that name the path, the cause and the
fix (an unreadable key says who owns it and who we run as), passphrases from
the environment for unattended runs, and no `sys.exit` from inside a library.

Implementation note: crypt4gh wraps its private-key parsers in a decorator that
prints to stderr and calls `sys.exit(2)` on any error; `_undecorated` reaches the
wrapped function so that a wrong passphrase becomes a `KeyLoadError` instead.
"""

import base64
import getpass
import io
import logging
import os
import pwd
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crypt4gh.keys import c4gh as _c4gh
from crypt4gh.keys import get_public_key as _c4gh_get_public_key
from crypt4gh.keys import ssh as _ssh
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from snakemake_ghga.errors import KeyLoadError
from snakemake_ghga.files.private import open_private

__all__ = [
    "PASSPHRASE_ENV_VARS",
    "check_key_pair",
    "encode_public_key_b64",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "public_key_of",
    "write_private_key",
    "write_public_key",
]

logger = logging.getLogger(__name__)
# crypt4gh logs secret keys and session keys at DEBUG level: keep it quiet.
logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)

PASSPHRASE_ENV_VARS = ("C4GH_PASSPHRASE", "C4GH_PASSWORD")
KEY_SIZE = 32


def _undecorated(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Return the function `name` inside crypt4gh's `exit_on_invalid_passphrase`."""
    for cell in func.__closure__ or ():
        inner = cell.cell_contents
        if callable(inner) and getattr(inner, "__name__", "") == name:
            return inner  # type: ignore[no-any-return]
    return func


_parse_c4gh_private = _undecorated(_c4gh.parse_private_key, "parse_private_key")
_parse_ssh_private = _undecorated(_ssh.parse_private_key, "parse_private_key")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _unreadable_error(path: Path, kind: str) -> KeyLoadError:
    """Explain EACCES: who owns the key, its mode, who we are, and what to do."""
    me = _user_name(os.geteuid())
    try:
        st = path.stat()
    except OSError:
        return KeyLoadError(
            f"cannot read {kind} {path}: permission denied on the key or its directory "
            f"for user {me}",
            "Make the directory searchable (chmod u+x) or copy the key to a "
            "readable location",
        )
    owner = _user_name(st.st_uid)
    mode = stat.S_IMODE(st.st_mode)
    return KeyLoadError(
        f"cannot read {kind} {path}: it is owned by {owner} with mode {mode:04o}, "
        f"and this process runs as {me}",
        f"Run as {owner}, or as its owner `chmod u+r {path}`, or copy the key to a "
        "location readable by you (keep it mode 0600)",
    )


def _read_key_file(path: Path, kind: str) -> bytes:
    """Read a key file with errors that name the path, the cause and the fix."""
    option = "--my-private-key" if "private" in kind else "--my-public-key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyLoadError(
            f"{kind} not found: {path}",
            f"Pass the right path with {option}, or create a key pair with "
            "`crypt4gh-keygen`",
        ) from None
    except IsADirectoryError:
        raise KeyLoadError(
            f"{kind} {path} is a directory, not a key file",
            f"Pass the key file itself with {option}",
        ) from None
    except PermissionError:
        raise _unreadable_error(path, kind) from None
    except OSError as err:
        raise KeyLoadError(f"cannot read {kind} {path}: {err.strerror}") from None


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """Load a Crypt4GH or OpenSSH ed25519 public key file.

    Returns:
        The 32-byte X25519 public key.

    Raises:
        KeyLoadError: missing, unreadable or malformed file.
    """
    key_path = Path(path)
    _read_key_file(key_path, "public key")
    try:
        key = _c4gh_get_public_key(os.fspath(key_path))
    except Exception as err:  # crypt4gh raises ValueError, binascii.Error, ...
        raise _malformed(key_path, "public key", err) from None
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise _malformed(key_path, "public key", None)
    return key


def _malformed(path: Path, kind: str, err: Exception | None) -> KeyLoadError:
    detail = f" ({err})" if err else ""
    return KeyLoadError(
        f"{path} is not a valid Crypt4GH or OpenSSH ed25519 {kind}{detail}",
        "Check that the right file was given; `crypt4gh-keygen` writes valid keys",
    )


def _passphrase_source(path: Path, passphrase: str | None) -> Callable[[], str]:
    """Build the callback crypt4gh calls only when the key is encrypted."""

    def source() -> str:
        if passphrase is not None:
            return passphrase
        for name in PASSPHRASE_ENV_VARS:
            value = os.environ.get(name)
            if value:
                return value
        if sys.stdin is not None and sys.stdin.isatty():
            return getpass.getpass(f"Passphrase for {path}: ")
        raise KeyLoadError(
            f"private key {path} is protected by a passphrase and no terminal is "
            "attached to ask for it",
            "Set the environment variable C4GH_PASSPHRASE (or C4GH_PASSWORD)",
        )

    return source


def _parse_private(data: bytes, callback: Callable[[], str]) -> bytes:
    stream = io.BytesIO(data)
    if stream.read(len(_c4gh.MAGIC_WORD)) == _c4gh.MAGIC_WORD:
        return bytes(_parse_c4gh_private(stream, callback))
    stream.seek(0)
    if stream.read(len(_ssh.MAGIC_WORD)) == _ssh.MAGIC_WORD:
        return bytes(_parse_ssh_private(stream, callback)[0])
    raise ValueError("neither a c4gh-v1 nor an openssh-key-v1 private key")


def _decode_armour(path: Path, raw: bytes) -> bytes:
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    if (
        len(lines) < 3
        or not lines[0].startswith(b"-----BEGIN ")
        or not lines[-1].startswith(b"-----END ")
    ):
        raise _malformed(path, "private key", ValueError("no PEM armour"))
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except ValueError as err:
        raise _malformed(path, "private key", err) from None


def load_private_key(
    path: str | os.PathLike[str], passphrase: str | None = None
) -> bytes:
    """Load a Crypt4GH (c4gh-v1) or OpenSSH ed25519 private key file.

    The passphrase, when the key needs one, comes from the argument, else from
    C4GH_PASSPHRASE or C4GH_PASSWORD, else from a prompt on a terminal.

    Returns:
        The 32-byte X25519 secret key.

    Raises:
        KeyLoadError: missing, unreadable or malformed file; wrong or missing
            passphrase.
    """
    key_path = Path(path)
    data = _decode_armour(key_path, _read_key_file(key_path, "private key"))
    _warn_if_exposed(key_path)
    asked: list[bool] = []
    source = _passphrase_source(key_path, passphrase)

    def callback() -> str:
        asked.append(True)
        return source()

    try:
        key = _parse_private(data, callback)
    except KeyLoadError:
        raise
    except (InvalidTag, ValueError, AssertionError) as err:
        if asked:
            raise KeyLoadError(
                f"wrong passphrase for private key {key_path}",
                "Check C4GH_PASSPHRASE (or C4GH_PASSWORD) or the passphrase typed",
            ) from None
        raise _malformed(key_path, "private key", err) from None
    if len(key) != KEY_SIZE:
        raise _malformed(key_path, "private key", None)
    return key


def _warn_if_exposed(path: Path) -> None:
    """Warn, as ssh does, when group or others may read a private key."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        logger.warning(
            "private key %s is accessible by group or others (mode %04o); "
            "run `chmod 600 %s`",
            path,
            mode,
            path,
        )


def public_key_of(secret_key: bytes) -> bytes:
    """Derive the X25519 public key of a secret key."""
    private = X25519PrivateKey.from_private_bytes(secret_key)
    return private.public_key().public_bytes_raw()


def check_key_pair(
    secret_key: bytes, public_key: bytes, public_path: str | os.PathLike[str]
) -> None:
    """Raise KeyLoadError unless the public key belongs to the secret key."""
    if public_key_of(secret_key) != public_key:
        raise KeyLoadError(
            f"public key {public_path} does not belong to the private key given",
            "Pass the matching pair with --my-public-key and --my-private-key",
        )


def generate_key_pair() -> tuple[bytes, bytes]:
    """Return a fresh (secret, public) X25519 key pair."""
    secret = X25519PrivateKey.generate()
    raw = secret.private_bytes_raw()
    return raw, secret.public_key().public_bytes_raw()


def encode_public_key_b64(public_key: bytes) -> str:
    """Base64 of a public key, as GHGA's WKVS and work packages carry it."""
    return base64.b64encode(public_key).decode("ascii")


def write_public_key(path: str | os.PathLike[str], public_key: bytes) -> None:
    """Write a public key in the crypt4gh file format."""
    body = encode_public_key_b64(public_key)
    text = (
        f"-----BEGIN CRYPT4GH PUBLIC KEY-----\n{body}\n"
        "-----END CRYPT4GH PUBLIC KEY-----\n"
    )
    Path(path).write_text(text, encoding="ascii")


def write_private_key(path: str | os.PathLike[str], secret_key: bytes) -> None:
    """Write an unencrypted c4gh-v1 private key file, created with mode 0600."""
    blob = (
        _c4gh.MAGIC_WORD
        + _c4gh.encode_string(None)
        + _c4gh.encode_string(None)
        + _c4gh.encode_string(secret_key)
    )
    body = base64.b64encode(blob).decode("ascii")
    text = (
        f"-----BEGIN CRYPT4GH PRIVATE KEY-----\n{body}\n"
        "-----END CRYPT4GH PRIVATE KEY-----\n"
    )
    fd = open_private(Path(path))  # never through a planted link or into theirs
    os.ftruncate(fd, 0)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
