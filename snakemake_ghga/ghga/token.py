"""Work-package access tokens: where they come from, their format, decryption.

Imports only ``errors`` and PyNaCl. The Data Portal shows a token as
``<work_package_id>:<base64 sealed box>``; the sealed box holds the access
token, encrypted to the user's Crypt4GH (X25519) public key. Printing belongs
to the caller: the prompt is a function passed in.
"""

import base64
import binascii
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from snakemake_ghga.errors import AuthError, ConfigError

__all__ = [
    "TOKEN_ENV_VAR",
    "TOKEN_PROMPT",
    "WorkPackageToken",
    "open_sealed_box",
    "parse_token",
    "read_token_text",
]

TOKEN_ENV_VAR = "GHGA_WORK_PACKAGE_TOKEN"
TOKEN_PROMPT = (
    "Please paste the complete access token that you copied from the GHGA data portal: "
)
_GET_TOKEN_HINT = (
    "Copy the complete token (work package id, a colon, then the encrypted part) "
    "from the GHGA Data Portal"
)


@dataclass(frozen=True, slots=True)
class WorkPackageToken:
    """A parsed token: the work package id and the still-sealed access token."""

    work_package_id: str
    sealed_token: str = field(repr=False)


def read_token_text(
    token_file: Path | None,
    prompt: Callable[[str], str] | None,
    environ: dict[str, str] | None = None,
) -> str:
    """Return the raw token from env, then ``token_file``, then the prompt.

    Raises:
        ConfigError: no source has a token, or the file cannot be read.
    """
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV_VAR, "").strip():
        return env[TOKEN_ENV_VAR].strip()
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(
                f"cannot read the token file {token_file}: {err.strerror}",
                "Check the path given to --token-file",
            ) from err
    if prompt is not None:
        return prompt(TOKEN_PROMPT).strip()
    raise ConfigError(
        "no work package token given",
        f"Set {TOKEN_ENV_VAR}, pass --token-file, or run interactively",
    )


def parse_token(text: str) -> WorkPackageToken:
    """Validate ``<id>:<sealed box>`` as the official client does.

    Raises:
        ConfigError: the text does not have that shape (the token is not shown).
    """
    pieces = text.strip().split(":")
    if len(pieces) != 2:
        raise ConfigError(
            "the work package token must be '<id>:<encrypted token>' "
            f"(found {len(pieces) - 1} colons)",
            _GET_TOKEN_HINT,
        )
    package_id, sealed = (piece.strip() for piece in pieces)
    if not 20 <= len(package_id) < 40 or not 80 <= len(sealed) < 120:
        raise ConfigError(
            "the work package token has the wrong length "
            f"(id {len(package_id)} chars, token {len(sealed)} chars)",
            _GET_TOKEN_HINT,
        )
    return WorkPackageToken(package_id, sealed)


def open_sealed_box(sealed_b64: str, secret_key: bytes, what: str) -> str:
    """Decrypt a base64 sealed box addressed to ``secret_key``'s public key.

    Args:
        sealed_b64: standard base64 of the sealed box.
        secret_key: the user's 32-byte X25519 secret key.
        what: the object for error messages, e.g. "the work package token".

    Raises:
        AuthError: the box was sealed to another key or is not a sealed box.
    """
    try:
        box = base64.b64decode(sealed_b64, validate=True)
        plain: bytes = SealedBox(PrivateKey(secret_key)).decrypt(box)
        return plain.decode("utf-8")
    except (binascii.Error, CryptoError, UnicodeDecodeError, ValueError) as err:
        raise AuthError(
            f"{what} cannot be opened with your private key: it was issued for "
            "another key or is damaged",
            "Use the key pair whose public key you gave the Data Portal when the "
            "token was created (--my-private-key), or request a new token",
        ) from err
