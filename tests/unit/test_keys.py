"""Key loading: every format crypt4gh reads, passphrase sources, one-line errors."""

import base64
import logging
import os
import subprocess
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh as lib_c4gh
from crypt4gh.keys.kdf import derive_key, get_kdf
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import KeyLoadError, LocalFileError


def write_c4gh_key(path: Path, secret: bytes, kdf: bytes, passphrase: str) -> None:
    """A c4gh-v1 private key protected with the given KDF, via crypt4gh's helpers."""
    salt_size, rounds = get_kdf(kdf)
    salt = os.urandom(salt_size)
    derived = derive_key(kdf, passphrase.encode(), salt, rounds)
    nonce = os.urandom(12)
    sealed = ChaCha20Poly1305(derived).encrypt(nonce, secret, None)
    blob = (
        lib_c4gh.MAGIC_WORD
        + lib_c4gh.encode_string(kdf)
        + lib_c4gh.encode_string(rounds.to_bytes(4, "big") + salt)
        + lib_c4gh.encode_string(b"chacha20_poly1305")
        + lib_c4gh.encode_string(nonce + sealed)
    )
    armoured = base64.b64encode(blob).decode()
    path.write_text(
        f"-----BEGIN CRYPT4GH PRIVATE KEY-----\n{armoured}\n"
        "-----END CRYPT4GH PRIVATE KEY-----\n"
    )
    path.chmod(0o600)


@pytest.mark.parametrize("kdf", [b"scrypt", b"bcrypt", b"pbkdf2_hmac_sha256"])
def test_load_private_key_each_kdf_with_env_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kdf: bytes
) -> None:
    secret, public = keys.generate_key_pair()
    write_c4gh_key(tmp_path / "k.sec", secret, kdf, "pass phrase")
    monkeypatch.setenv("C4GH_PASSPHRASE", "pass phrase")
    assert keys.load_private_key(tmp_path / "k.sec") == secret
    assert keys.public_key_of(secret) == public


def test_load_private_key_accepts_c4gh_password_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, _ = keys.generate_key_pair()
    write_c4gh_key(tmp_path / "k.sec", secret, b"scrypt", "pw")
    monkeypatch.setenv("C4GH_PASSWORD", "pw")
    assert keys.load_private_key(tmp_path / "k.sec") == secret


def test_load_keys_from_reference_keygen(reference_keys) -> None:  # type: ignore[no-untyped-def]
    for name, passphrase in (("plain", ""), ("locked", "s3cret")):
        stem = reference_keys(name, passphrase)
        secret = keys.load_private_key(f"{stem}.sec", passphrase or None)
        public = keys.load_public_key(f"{stem}.pub")
        keys.check_key_pair(secret, public, f"{stem}.pub")


def test_load_openssh_ed25519_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "sshpass", "-f", str(key)],
        check=True,
    )
    monkeypatch.setenv("C4GH_PASSPHRASE", "sshpass")
    secret = keys.load_private_key(key)
    public = keys.load_public_key(f"{key}.pub")
    keys.check_key_pair(secret, public, f"{key}.pub")


def test_passphrase_without_tty_or_variable_names_the_variable(tmp_path: Path) -> None:
    secret, _ = keys.generate_key_pair()
    write_c4gh_key(tmp_path / "k.sec", secret, b"scrypt", "pw")
    with pytest.raises(KeyLoadError, match="C4GH_PASSPHRASE") as info:
        keys.load_private_key(tmp_path / "k.sec")
    assert str(tmp_path / "k.sec") in str(info.value)


def test_wrong_passphrase_is_a_key_error_not_an_exit(tmp_path: Path) -> None:
    secret, _ = keys.generate_key_pair()
    write_c4gh_key(tmp_path / "k.sec", secret, b"bcrypt", "right")
    with pytest.raises(
        KeyLoadError, match=r"wrong passphrase for private key .*k\.sec"
    ):
        keys.load_private_key(tmp_path / "k.sec", "wrong")


def test_missing_key_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(
        KeyLoadError, match=r"private key not found: .*nope\.sec.*--my-private-key"
    ):
        keys.load_private_key(tmp_path / "nope.sec")
    with pytest.raises(KeyLoadError, match=r"public key not found: .*nope\.pub"):
        keys.load_public_key(tmp_path / "nope.pub")


def test_directory_as_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match="is a directory"):
        keys.load_private_key(tmp_path)
    with pytest.raises(KeyLoadError, match="is a directory"):
        keys.load_public_key(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"-----BEGIN CRYPT4GH PRIVATE KEY-----\n!!!\n-----END X-----\n",
        b"-----BEGIN CRYPT4GH PRIVATE KEY-----\nAAAA\n-----END X-----\n",
    ],
)
def test_malformed_private_key_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.sec").write_bytes(content)
    with pytest.raises(KeyLoadError, match=r"bad\.sec is not a valid"):
        keys.load_private_key(tmp_path / "bad.sec")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"-----BEGIN CRYPT4GH PUBLIC KEY-----\nAAAA\n-----END CRYPT4GH PUBLIC KEY-----\n",
    ],
)
def test_malformed_public_key_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.pub").write_bytes(content)
    with pytest.raises(KeyLoadError, match=r"bad\.pub is not a valid"):
        keys.load_public_key(tmp_path / "bad.pub")


def test_mismatched_pair_is_refused(user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyLoadError, match="does not belong to the private key"):
        keys.check_key_pair(user_keys.secret, hub_keys.public, hub_keys.public_path)


def test_group_readable_private_key_warns_but_loads(user_keys, caplog) -> None:  # type: ignore[no-untyped-def]
    user_keys.secret_path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="snakemake_ghga"):
        assert keys.load_private_key(user_keys.secret_path) == user_keys.secret
    assert "accessible by group or others (mode 0644)" in caplog.text
    assert "chmod 600" in caplog.text


def test_private_key_written_0600(user_keys) -> None:  # type: ignore[no-untyped-def]
    assert user_keys.secret_path.stat().st_mode & 0o777 == 0o600


def test_private_key_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    theirs = tmp_path / "readable-by-them"
    theirs.write_text("")
    (tmp_path / "key.sec").symlink_to(theirs)
    secret, _ = keys.generate_key_pair()
    with pytest.raises(LocalFileError, match="not a file of yours"):
        keys.write_private_key(tmp_path / "key.sec", secret)
    assert theirs.read_text() == ""
    keys.write_private_key(tmp_path / "new.sec", secret)  # and ours is rewritten
    keys.write_private_key(tmp_path / "new.sec", secret)
    assert keys.load_private_key(tmp_path / "new.sec") == secret


def test_no_key_material_logged_at_debug(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    secret, _ = keys.generate_key_pair()
    write_c4gh_key(tmp_path / "k.sec", secret, b"scrypt", "pw")
    with caplog.at_level(logging.DEBUG):
        keys.load_private_key(tmp_path / "k.sec", "pw")
    assert secret.hex() not in caplog.text.lower()
    assert "pw" not in caplog.text
