"""Token sources, format checks and sealed-box decryption."""

import base64
from pathlib import Path

import pytest
from nacl.public import PrivateKey, PublicKey, SealedBox

from snakemake_ghga.errors import AuthError, ConfigError
from snakemake_ghga.ghga.token import (
    TOKEN_ENV_VAR,
    TOKEN_PROMPT,
    open_sealed_box,
    parse_token,
    read_token_text,
)

PACKAGE_ID = "0d9f8e3a-6b7c-4d2e-9f10-aabbccddeeff"


def _seal(plain: str, public_key: bytes) -> str:
    box = SealedBox(PublicKey(public_key))
    return base64.b64encode(box.encrypt(plain.encode())).decode()


@pytest.fixture
def user_key() -> PrivateKey:
    return PrivateKey.generate()


def test_parse_token_real_shape_keeps_id_and_hides_secret(user_key: PrivateKey) -> None:
    sealed = _seal("A" * 24, bytes(user_key.public_key))
    token = parse_token(f" {PACKAGE_ID}:{sealed}\n")
    assert token.work_package_id == PACKAGE_ID
    assert token.sealed_token == sealed
    assert sealed not in repr(token)


@pytest.mark.parametrize(
    ("text", "match"),
    [("no-colon", "found 0 colons"), ("a:b:c", "found 2 colons"), ("ab:cd", "length")],
)
def test_parse_token_malformed_is_config_error(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_token(text)
    assert "Data Portal" in str(info.value)


def test_open_sealed_box_right_key_returns_plaintext(user_key: PrivateKey) -> None:
    sealed = _seal("secret-token-123", bytes(user_key.public_key))
    assert open_sealed_box(sealed, bytes(user_key), "the token") == "secret-token-123"


def test_open_sealed_box_other_key_says_so(user_key: PrivateKey) -> None:
    sealed = _seal("secret-token-123", bytes(PrivateKey.generate().public_key))
    with pytest.raises(AuthError, match="issued for another key") as info:
        open_sealed_box(sealed, bytes(user_key), "the work package token")
    assert "secret-token-123" not in str(info.value)
    assert sealed not in str(info.value)


def test_read_token_text_prefers_env(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("from-file")
    text = read_token_text(token_file, None, {TOKEN_ENV_VAR: " from-env \n"})
    assert text == "from-env"


def test_read_token_text_file_then_prompt(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("from-file\n")
    assert read_token_text(token_file, None, {}) == "from-file"
    prompts: list[str] = []

    def prompt(message: str) -> str:
        prompts.append(message)
        return "typed\n"

    assert read_token_text(None, prompt, {}) == "typed"
    assert prompts == [TOKEN_PROMPT]
    assert "Please paste the complete access token" in TOKEN_PROMPT


def test_read_token_text_missing_file_and_no_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the token file"):
        read_token_text(tmp_path / "missing", None, {})
    with pytest.raises(ConfigError, match="no work package token"):
        read_token_text(None, None, {})
