"""Properties of the part plans (pure, no I/O)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakemake_ghga.config import TransferConfig
from snakemake_ghga.errors import ConfigError
from snakemake_ghga.transfer.parts import (
    CIPHER_SEGMENT_SIZE,
    MAX_PARTS,
    MAX_UPLOAD_PART_SIZE,
    MIN_UPLOAD_PART_SIZE,
    PARTS_PER_WORKER,
    SEGMENT_SIZE,
    auto_part_size,
    download_part_size,
    plain_offset_of,
    plan_parts,
    requested_part_size,
    upload_part_size,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB


@given(total=st.integers(0, 10**7), part=st.integers(1_000, 10**6))
def test_plan_parts_cover_every_byte_once(total: int, part: int) -> None:
    plan = plan_parts(total, part)
    parts = list(plan)
    assert len(parts) == plan.count
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    position = 0
    for p in parts:
        assert p.offset == position
        assert p.size >= 1
        position = p.end
    assert position == total
    assert all(p.size == part for p in parts[:-1])


@given(encrypted=st.integers(125, 5 * TiB), requested=st.integers(5 * MiB, 5 * GiB))
def test_upload_part_size_obeys_ucs_rules(encrypted: int, requested: int) -> None:
    size = upload_part_size(encrypted, requested)
    assert size % CIPHER_SEGMENT_SIZE == 0
    assert 5 * MiB <= MIN_UPLOAD_PART_SIZE <= size <= MAX_UPLOAD_PART_SIZE <= 5 * GiB
    assert plan_parts(encrypted, size).count <= MAX_PARTS


def test_upload_part_size_default_matches_official_client() -> None:
    assert upload_part_size(157_353_724, 64 * MiB) == 67_137_536


@pytest.mark.parametrize(
    ("encrypted", "expected"),
    [(100 * GiB, 67_137_536), (700 * GiB, 75_267_472), (6 * TiB, 660_360_608)],
)
def test_upload_part_size_large_files_match_official(
    encrypted: int, expected: int
) -> None:
    # the official examples are quoted for plaintext sizes; the encrypted size
    # differs only by 0.04 %, which lands in the same segment count
    plain = encrypted
    enc = plain + 28 * -(-plain // SEGMENT_SIZE) + 124
    assert upload_part_size(enc, 64 * MiB) == expected


def test_upload_part_size_too_large_file_is_config_error() -> None:
    with pytest.raises(ConfigError, match="10000 parts"):
        upload_part_size(MAX_UPLOAD_PART_SIZE * MAX_PARTS + 1, 64 * MiB)


@given(requested=st.integers(1, 10 * GiB))
def test_download_part_size_is_segment_aligned(requested: int) -> None:
    size = download_part_size(requested)
    assert size % CIPHER_SEGMENT_SIZE == 0
    assert size >= requested
    assert size - requested < CIPHER_SEGMENT_SIZE


@given(segments=st.integers(0, 10**6))
def test_plain_offset_of_maps_segments(segments: int) -> None:
    assert plain_offset_of(segments * CIPHER_SEGMENT_SIZE) == segments * SEGMENT_SIZE


def test_plain_offset_of_unaligned_offset_is_rejected() -> None:
    with pytest.raises(ValueError, match="not segment-aligned"):
        plain_offset_of(CIPHER_SEGMENT_SIZE + 1)


def test_part_byte_range_is_inclusive() -> None:
    assert plan_parts(10, 4).part(3).byte_range == "8-9"
    with pytest.raises(IndexError):
        plan_parts(10, 4).part(4)


def test_auto_part_size_spreads_a_file_over_the_workers() -> None:
    # PARTS_PER_WORKER parts per worker, whole segments, within 5 .. 64 MiB
    size = auto_part_size(1024 * MiB, 16)
    assert size % CIPHER_SEGMENT_SIZE == 0
    assert size == download_part_size(-(-1024 * MiB // (PARTS_PER_WORKER * 16)))
    assert -(-1024 * MiB // size) == PARTS_PER_WORKER * 16
    assert auto_part_size(10 * MiB, 24) == MIN_UPLOAD_PART_SIZE
    largest = download_part_size(64 * MiB)  # 64 MiB in whole segments
    assert auto_part_size(8 * 1024 * MiB, 24) == largest
    assert auto_part_size(2048 * MiB, 4) == largest


def test_requested_part_size_prefers_the_configured_one() -> None:
    assert requested_part_size(512 * MiB, TransferConfig(part_size_bytes=16 * MiB)) == (
        16 * MiB
    )
    assert requested_part_size(512 * MiB, TransferConfig(max_workers=8)) == (
        auto_part_size(512 * MiB, 8)
    )
