"""Work package access tokens and work order tokens of the sandbox WPS."""

import base64
import re
import time
from pathlib import Path

import jwt
import pytest

from snakemake_ghga.sandbox.problems import HttpProblem
from snakemake_ghga.sandbox.tokens import (
    WorkOrderClaims,
    WorkOrderSigner,
    format_portal_token,
    hash_access_token,
    is_access_token,
    new_access_token,
    seal_to,
)
from tests.conftest import KeyPair
from tests.support.ghga_http import unseal


def test_access_token_is_24_alphanumerics() -> None:
    tokens = {new_access_token() for _ in range(20)}

    assert len(tokens) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9]{24}", t) for t in tokens)


def test_access_token_checked_against_its_hash() -> None:
    token = new_access_token()
    stored = hash_access_token(token)

    assert is_access_token(token, stored)
    other_last = "y" if token.endswith("x") else "x"  # a token ends in "x" 1 time in 62
    assert not is_access_token(token[:-1] + other_last, stored)


def test_portal_token_passes_the_official_clients_shape_check(
    user_keys: KeyPair,
) -> None:
    token = new_access_token()

    printed = format_portal_token("0" * 36, seal_to(user_keys.public, token.encode()))

    package_id, sealed = printed.split(":")
    assert 20 <= len(package_id) < 40
    assert 80 <= len(sealed) < 120
    assert unseal(user_keys.secret, sealed) == token


def test_wot_roundtrip_keeps_claims(tmp_path: Path, user_keys: KeyPair) -> None:
    signer = WorkOrderSigner(tmp_path / "wps.pem")
    claims = WorkOrderClaims("upload", user_keys.public, box_id="b", file_id="f")

    verified = signer.verify(f"Bearer {signer.issue(claims)}")

    assert verified == claims


def test_wot_lives_30_seconds(tmp_path: Path, user_keys: KeyPair) -> None:
    signer = WorkOrderSigner(tmp_path / "wps.pem")

    token = signer.issue(WorkOrderClaims("view", user_keys.public, box_id="b"))

    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 30
    assert abs(payload["iat"] - time.time()) < 5
    assert base64.b64decode(payload["user_public_crypt4gh_key"]) == user_keys.public
    assert jwt.get_unverified_header(token)["alg"] == "ES256"


@pytest.mark.parametrize(
    "authorization", [None, "Basic abc", "Bearer not.a.jwt", "Bearer "]
)
def test_wot_without_valid_bearer_401(
    tmp_path: Path, authorization: str | None
) -> None:
    signer = WorkOrderSigner(tmp_path / "wps.pem")

    with pytest.raises(HttpProblem) as caught:
        signer.verify(authorization)

    assert caught.value.status == 401


def test_wot_signed_by_another_wps_401(tmp_path: Path, user_keys: KeyPair) -> None:
    ours = WorkOrderSigner(tmp_path / "ours.pem")
    theirs = WorkOrderSigner(tmp_path / "theirs.pem")
    token = theirs.issue(WorkOrderClaims("view", user_keys.public, box_id="b"))

    with pytest.raises(HttpProblem) as caught:
        ours.verify(f"Bearer {token}")

    assert caught.value.status == 401


def test_signing_key_is_persisted_private(tmp_path: Path, user_keys: KeyPair) -> None:
    first = WorkOrderSigner(tmp_path / "wps.pem")
    token = first.issue(WorkOrderClaims("view", user_keys.public, box_id="b"))

    second = WorkOrderSigner(tmp_path / "wps.pem")

    assert second.verify(f"Bearer {token}").box_id == "b"
    assert (tmp_path / "wps.pem").stat().st_mode & 0o077 == 0
    assert "redacted" in repr(second)
