"""Work package access tokens and work order tokens (WOTs), as the GHGA WPS issues them.

Imports the stdlib, PyNaCl, pyjwt and cryptography; nothing from the client side.

- Access tokens: 24 characters of [A-Za-z0-9]; only their SHA-256 is stored;
  the user gets them sealed (libsodium sealed box) to their Crypt4GH public key
  and shown as `<work_package_id>:<base64>`, exactly like the Data Portal.
- WOTs: ES256 JWTs signed with the WPS key kept in the state directory, sealed
  to the same user key, valid 30 s; verified with zero leeway, which is
  stricter than the real services (reference §9.2).
"""

import base64
import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.public import PublicKey, SealedBox

from .problems import HttpProblem
from .state import read_or_create_secret

__all__ = [
    "ACCESS_TOKEN_LENGTH",
    "WORK_ORDER_TOKEN_VALID_S",
    "WorkOrderClaims",
    "WorkOrderSigner",
    "format_portal_token",
    "hash_access_token",
    "is_access_token",
    "new_access_token",
    "seal_to",
]

ACCESS_TOKEN_LENGTH = 24
WORK_ORDER_TOKEN_VALID_S = 30
_ALPHABET = string.ascii_letters + string.digits
_ALGORITHM = "ES256"


def new_access_token() -> str:
    """Return a fresh 24-character work package access token."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(ACCESS_TOKEN_LENGTH))


def hash_access_token(token: str) -> str:
    """Return the SHA-256 hex digest under which an access token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_access_token(token: str, token_sha256: str) -> bool:
    """Check a presented access token against its stored hash in constant time."""
    return hmac.compare_digest(hash_access_token(token), token_sha256)


def seal_to(user_public_key: bytes, payload: bytes) -> str:
    """Seal `payload` to an X25519 public key; return standard padded base64."""
    sealed = bytes(SealedBox(PublicKey(user_public_key)).encrypt(payload))
    return base64.b64encode(sealed).decode("ascii")


def format_portal_token(work_package_id: str, sealed_token_b64: str) -> str:
    """Format a work package token as the Data Portal shows it."""
    return f"{work_package_id}:{sealed_token_b64}"


@dataclass(frozen=True, slots=True)
class WorkOrderClaims:
    """The verified claims of a work order token."""

    work_type: str
    user_public_key: bytes
    box_id: str | None = None
    file_id: str | None = None
    alias: str | None = None
    accession: str | None = None


def _new_signing_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class WorkOrderSigner:
    """Signs WOTs with the WPS key and verifies them for the UCS and DCS."""

    def __init__(self, key_path: Path) -> None:
        pem = read_or_create_secret(key_path, _new_signing_key_pem)
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} does not hold an EC private key")
        self._private_key = key
        self._public_key = key.public_key()

    def __repr__(self) -> str:
        return "WorkOrderSigner(<key redacted>)"

    def issue(self, claims: WorkOrderClaims) -> str:
        """Sign `claims` as a JWT valid for 30 s from now."""
        now = int(time.time())
        payload: dict[str, object] = {
            "work_type": claims.work_type,
            "user_public_crypt4gh_key": base64.b64encode(claims.user_public_key).decode(
                "ascii"
            ),
            "iat": now,
            "exp": now + WORK_ORDER_TOKEN_VALID_S,
        }
        for name in ("box_id", "file_id", "alias", "accession"):
            value = getattr(claims, name)
            if value is not None:
                payload[name] = value
        return jwt.encode(payload, self._private_key, algorithm=_ALGORITHM)

    def verify(self, authorization: str | None) -> WorkOrderClaims:
        """Verify a `Bearer` WOT and return its claims.

        Raises:
            HttpProblem: 401 when the header is missing, or the token is
                expired, malformed or not signed by this WPS.
        """
        token = _bearer_token(authorization)
        try:
            payload = jwt.decode(
                token,
                self._public_key,
                algorithms=[_ALGORITHM],
                leeway=0,
                options={"require": ["exp", "iat", "work_type"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the work order token has expired") from None
        except jwt.InvalidTokenError as err:
            raise _unauthenticated(f"the work order token is invalid ({err})") from None
        return _claims_of(payload)


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("no Bearer work order token was sent")
    return token.strip()


def _unauthenticated(description: str) -> HttpProblem:
    return HttpProblem(401, "notAuthenticated", description)


def _claims_of(payload: dict[str, object]) -> WorkOrderClaims:
    def text(name: str) -> str | None:
        value = payload.get(name)
        return value if isinstance(value, str) else None

    try:
        user_key = base64.b64decode(
            text("user_public_crypt4gh_key") or "", validate=True
        )
    except ValueError:
        user_key = b""
    if len(user_key) != 32:
        raise _unauthenticated("the work order token carries no valid user key")
    return WorkOrderClaims(
        work_type=text("work_type") or "",
        user_public_key=user_key,
        box_id=text("box_id"),
        file_id=text("file_id"),
        alias=text("alias"),
        accession=text("accession"),
    )
