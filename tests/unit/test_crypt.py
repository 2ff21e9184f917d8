"""The Crypt4GH engine: layout to the byte, one-pass checksums, resume, failures."""

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from crypt4gh import header as lib_header

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import DecryptionError, InputFileError

SIZES = [1, 65_535, 65_536, 65_537, 3 * 2**20 + 17]


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_is_byte_identical(tmp_path, user_keys, hub_keys, size) -> None:  # type: ignore[no-untyped-def]
    plain = write_random(tmp_path / "in.bin", size)
    result = crypt.encrypt_file(
        tmp_path / "in.bin",
        tmp_path / "out.c4gh",
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
    )
    assert result.plain_size == size
    assert result.plain_sha256 == hashlib.sha256(plain).hexdigest()
    assert (tmp_path / "out.c4gh").stat().st_size == crypt.encrypted_size(size)
    crypt.decrypt_file(tmp_path / "out.c4gh", tmp_path / "back.bin", hub_keys.secret)
    assert (tmp_path / "back.bin").read_bytes() == plain


def test_layout_is_one_packet_124_byte_header(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "in.bin", 200_000)
    crypt.encrypt_file(
        tmp_path / "in.bin",
        tmp_path / "out.c4gh",
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
    )
    data = (tmp_path / "out.c4gh").read_bytes()
    assert data[:12] == b"crypt4gh\x01\x00\x00\x00"
    stream = io.BytesIO(data)
    packets = list(lib_header.parse(stream))
    assert len(packets) == 1 and stream.tell() == 124
    session_keys, edit_list = lib_header.deconstruct(
        io.BytesIO(data), [(0, hub_keys.secret, None)], sender_pubkey=user_keys.public
    )
    assert len(session_keys) == 1 and edit_list is None
    # 200,000 B = 3 full segments + 3,392 B: 3*65,564 + 3,392+28, after the header
    assert len(data) == 124 + 3 * 65_564 + 3_392 + 28


def test_encrypted_size_formula() -> None:
    assert crypt.encrypted_size(100) == 252
    assert crypt.encrypted_size(150 * 2**20) == 157_353_724
    assert crypt.plain_size_of(crypt.encrypted_size(123_456) - 124) == 123_456


@pytest.mark.parametrize("part_size", [65_564 * 16, 5 * 2**20, 65_564 * 3 + 7])
def test_part_checksums_and_etag_match_hashlib(
    tmp_path, user_keys, hub_keys, part_size
) -> None:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "in.bin", 7 * 2**20 + 5)
    seen: list[crypt.EncryptedPart] = []
    result = crypt.encrypt_file(
        tmp_path / "in.bin",
        tmp_path / "out.c4gh",
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
        part_size=part_size,
        on_part=seen.append,
        workers=3,
    )
    data = (tmp_path / "out.c4gh").read_bytes()
    expected = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    assert [p.number for p in result.parts] == list(range(1, len(expected) + 1))
    assert [p.md5 for p in result.parts] == [
        hashlib.md5(b).hexdigest() for b in expected
    ]
    assert [p.sha256 for p in result.parts] == [
        hashlib.sha256(b).hexdigest() for b in expected
    ]
    assert sorted(p.number for p in seen) == [p.number for p in result.parts]
    digests = b"".join(hashlib.md5(b).digest() for b in expected)
    assert (
        result.multipart_etag == f"{hashlib.md5(digests).hexdigest()}-{len(expected)}"
    )


def test_on_part_fires_only_when_part_is_on_disk(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "in.bin", 4 * 2**20)
    out = tmp_path / "out.c4gh"
    checked = []

    def verify(part: crypt.EncryptedPart) -> None:
        with open(out, "rb") as handle:
            handle.seek(part.offset)
            checked.append(hashlib.md5(handle.read(part.size)).hexdigest() == part.md5)

    crypt.encrypt_file(
        tmp_path / "in.bin",
        out,
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
        part_size=65_564 * 5,
        on_part=verify,
    )
    assert len(checked) > 5 and all(checked)


def test_resume_at_later_part_keeps_earlier_parts(
    tmp_path, user_keys, hub_keys
) -> None:  # type: ignore[no-untyped-def]
    plain = write_random(tmp_path / "in.bin", 2 * 2**20 + 999)
    out, part_size, key = tmp_path / "out.c4gh", 65_564 * 4, os.urandom(32)
    kwargs = dict(
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
        part_size=part_size,
        session_key=key,
    )
    first = crypt.encrypt_file(tmp_path / "in.bin", out, **kwargs)  # type: ignore[arg-type]
    before = out.read_bytes()
    with open(out, "r+b") as handle:  # damage everything from part 4 on
        handle.seek(124 + 12 * 65_564)  # first segment wholly inside part 4
        handle.write(b"\0" * 300_000)
    resumed = crypt.encrypt_file(tmp_path / "in.bin", out, first_part=4, **kwargs)  # type: ignore[arg-type]
    after = out.read_bytes()
    assert after[: 3 * part_size] == before[: 3 * part_size]
    assert resumed.parts[0].number == 4
    assert resumed.plain_sha256 == first.plain_sha256
    for part in resumed.parts:
        assert (
            hashlib.md5(after[part.offset : part.offset + part.size]).hexdigest()
            == part.md5
        )
    crypt.decrypt_file(out, tmp_path / "back.bin", hub_keys.secret)
    assert (tmp_path / "back.bin").read_bytes() == plain


def test_resume_refuses_damaged_boundary_segment(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "in.bin", 2 * 2**20)
    out, part_size, key = tmp_path / "out.c4gh", 65_564 * 4, os.urandom(32)
    kwargs = dict(
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
        part_size=part_size,
        session_key=key,
    )
    crypt.encrypt_file(tmp_path / "in.bin", out, **kwargs)  # type: ignore[arg-type]
    with open(out, "r+b") as handle:  # the tail of segment 11 belongs to part 4
        handle.seek(3 * part_size + 10)
        handle.write(b"\0" * 20)
    with pytest.raises(InputFileError, match="damaged before the resume point"):
        crypt.encrypt_file(tmp_path / "in.bin", out, first_part=4, **kwargs)  # type: ignore[arg-type]


def test_is_crypt4gh_by_magic_and_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"crypt4gh\x01\x00\x00\x00rest")
    (tmp_path / "b.C4GH").write_bytes(b"plain")
    (tmp_path / "c.txt").write_bytes(b"plain text")
    assert crypt.is_crypt4gh(tmp_path / "a.bin")
    assert crypt.is_crypt4gh(tmp_path / "b.C4GH")
    assert not crypt.is_crypt4gh(tmp_path / "c.txt")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("magic.bin", b"crypt4gh\x01\x00\x00\x00xyz", "already Crypt4GH-encrypted"),
        ("ending.c4gh", b"plain", "already Crypt4GH-encrypted"),
        ("empty.bin", b"", "is empty"),
    ],
)
def test_unusable_inputs_are_refused(
    tmp_path, user_keys, hub_keys, name, content, message
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        crypt.encrypt_file(
            tmp_path / name,
            tmp_path / "out.c4gh",
            writer_secret_key=user_keys.secret,
            recipient_public_key=hub_keys.public,
        )
    assert not (tmp_path / "out.c4gh").exists()


def test_missing_and_directory_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        crypt.check_plaintext_input(tmp_path / "nope")
    with pytest.raises(InputFileError, match="is a directory"):
        crypt.check_plaintext_input(tmp_path)


def test_temp_file_private_named_and_removed(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "sample.bam", 70_000)
    kwargs = dict(
        writer_secret_key=user_keys.secret, recipient_public_key=hub_keys.public
    )
    with crypt.encrypted_temp_file(
        tmp_path / "sample.bam", tmp_dir=tmp_path, **kwargs
    ) as result:  # type: ignore[arg-type]
        assert result.path.name.startswith("ghga-sample.bam-")
        assert result.path.suffix == ".c4gh"
        assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
        temp = result.path
    assert not temp.exists()
    with crypt.encrypted_temp_file(
        tmp_path / "sample.bam", tmp_dir=tmp_path, keep=True, **kwargs
    ) as kept:  # type: ignore[arg-type]
        pass
    assert kept.path.exists()


def test_temp_file_removed_on_failure(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "x.bin", 70_000)
    with (
        pytest.raises(RuntimeError),
        crypt.encrypted_temp_file(
            tmp_path / "x.bin",
            tmp_dir=tmp_path / "t" if False else tmp_path,
            writer_secret_key=user_keys.secret,
            recipient_public_key=hub_keys.public,
        ),
    ):
        raise RuntimeError("upload failed")
    assert list(tmp_path.glob("ghga-*.c4gh")) == []


def encrypted_copy(tmp_path: Path, user_keys, hub_keys, size: int) -> Path:  # type: ignore[no-untyped-def]
    write_random(tmp_path / "in.bin", size)
    crypt.encrypt_file(
        tmp_path / "in.bin",
        tmp_path / "in.bin.c4gh",
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
    )
    return tmp_path / "in.bin.c4gh"


def test_corrupted_segment_leaves_nothing_and_names_segment(
    tmp_path, user_keys, hub_keys
) -> None:  # type: ignore[no-untyped-def]
    source = encrypted_copy(tmp_path, user_keys, hub_keys, 5 * 65_536)
    data = bytearray(source.read_bytes())
    data[124 + 2 * 65_564 + 100] ^= 0xFF  # inside segment 2
    source.write_bytes(bytes(data))
    with pytest.raises(DecryptionError, match=r"in\.bin\.c4gh: segment 2 .*MAC"):
        crypt.decrypt_file(source, tmp_path / "out.bin", hub_keys.secret)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.bin",
        "in.bin.c4gh",
        "keys",
    ]


def test_truncated_ciphertext_is_an_error(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    source = encrypted_copy(tmp_path, user_keys, hub_keys, 65_536 + 10)
    source.write_bytes(source.read_bytes()[:-30])
    with pytest.raises(DecryptionError):
        crypt.decrypt_file(source, tmp_path / "out.bin", hub_keys.secret)
    assert not (tmp_path / "out.bin").exists()


def test_wrong_key_says_so(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    source = encrypted_copy(tmp_path, user_keys, hub_keys, 1000)
    with pytest.raises(
        DecryptionError, match="no header packet is encrypted for this private key"
    ):
        crypt.decrypt_file(source, tmp_path / "out.bin", user_keys.secret)
    assert not (tmp_path / "out.bin").exists()


def test_edit_list_file_decrypts_through_library(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    plain = write_random(tmp_path / "in.bin", 100_000)
    key = os.urandom(32)
    packets = [
        lib_header.make_packet_data_enc(0, key),
        lib_header.make_packet_data_edit_list([10, 500, 1000, 2000]),
    ]
    encrypted = [
        p
        for packet in packets
        for p in lib_header.encrypt(packet, [(0, user_keys.secret, hub_keys.public)])
    ]
    body = bytearray(crypt.encrypted_size(len(plain), 0))
    crypt.SegmentCipher(key).encrypt_into(memoryview(plain), memoryview(body))
    (tmp_path / "e.c4gh").write_bytes(lib_header.serialize(encrypted) + bytes(body))
    crypt.decrypt_file(tmp_path / "e.c4gh", tmp_path / "e.out", hub_keys.secret)
    assert (tmp_path / "e.out").read_bytes() == plain[10:510] + plain[1510:3510]


def test_reprs_hide_keys(tmp_path, hub_keys) -> None:  # type: ignore[no-untyped-def]
    key = os.urandom(32)
    assert key.hex() not in repr(crypt.SegmentCipher(key))
    assert key.hex() not in repr(crypt.SegmentDecryptor([key]))
    header = crypt.parse_header(
        crypt.make_header(key, hub_keys.secret, hub_keys.public), hub_keys.secret
    )
    assert (
        header.session_keys == [key]
        and "keys=1" in repr(header)
        and key.hex() not in repr(header)
    )
