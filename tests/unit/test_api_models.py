"""Parsing of GHGA response bodies: malformed shapes become a clear ApiError."""

from typing import Any

import pytest

from snakemake_ghga.api_models import parse_drs_object
from snakemake_ghga.errors import ApiError

S3 = {"type": "s3", "access_url": {"url": "http://s3/x?sig=1"}}


def _drs(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "GHGAF1",
        "size": 100,
        "checksums": [{"type": "sha-256", "checksum": "ab"}],
        "access_methods": [S3],
    }
    body.update(changes)
    return body


def test_drs_object_takes_first_s3_url_and_sha256() -> None:
    body = _drs(access_methods=["junk", {"type": "https"}, S3])

    drs = parse_drs_object("GHGAF1", body, 10.0)

    assert (drs.size, drs.sha256, drs.url, drs.max_age_s) == (
        100,
        "ab",
        "http://s3/x?sig=1",
        10.0,
    )


def test_drs_object_without_checksums_has_no_sha256() -> None:
    assert parse_drs_object("GHGAF1", _drs(checksums=None), None).sha256 is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([_drs()], "field 'size' missing or not int"),
        (_drs(size=True), "field 'size' is not a byte count"),
        (_drs(size=-1), "field 'size' is not a byte count"),
        (_drs(access_methods=None), "field 'access_methods' missing or not list"),
        (_drs(access_methods=S3), "field 'access_methods' missing or not list"),
        (_drs(access_methods=[{"type": "s3"}]), "field 'access_url' missing"),
        (_drs(access_methods=[{"type": "s3", "access_url": None}]), "'access_url'"),
        (_drs(access_methods=[{"type": "s3", "access_url": "u"}]), "'access_url'"),
        (_drs(access_methods=[{"type": "s3", "access_url": {}}]), "field 'url'"),
        (_drs(checksums={"type": "sha-256"}), "field 'checksums' is not a list"),
        (_drs(checksums=["ab"]), "an entry of 'checksums' is not an object"),
        (_drs(checksums=[{"type": "sha-256", "checksum": 5}]), "field 'checksum'"),
    ],
)
def test_malformed_drs_object_is_api_error(body: Any, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_drs_object("GHGAF1", body, None)

    assert str(info.value).startswith("DRS object GHGAF1: unexpected response, ")
    assert problem in str(info.value)
    assert "check for a newer snakemake-ghga" in str(info.value)


def test_drs_object_without_s3_method_names_it() -> None:
    body = _drs(access_methods=[{"type": "https", "access_url": {"url": "u"}}])

    with pytest.raises(ApiError, match="DRS object GHGAF1: no s3 access URL"):
        parse_drs_object("GHGAF1", body, None)
