"""Parsing of GHGA response bodies: malformed shapes become a clear ApiError."""

from typing import Any

import pytest

from snakemake_ghga.api_models import (
    decode_envelope,
    error_for,
    parse_drs_object,
    parse_well_known,
    parse_work_package,
)
from snakemake_ghga.errors import ApiError

S3 = {"type": "s3", "access_url": {"url": "http://s3/x?sig=1"}}
VALUES = {
    "wps_api_url": "http://wps",
    "ucs_api_url": "http://ucs",
    "dcs_api_url": "http://dcs",
    "crypt4gh_public_keys": {"HD01": "a2V5"},
}


def assert_unexpected(err: ApiError, what: str, problem: str) -> None:
    """Assert ``err`` is the clear error for a body of the wrong shape."""
    assert str(err).startswith(f"{what}: unexpected response, ")
    assert problem in str(err)
    assert "check for a newer snakemake-ghga" in str(err)


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
        (_drs(size=True), "field 'size' missing or not int"),
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

    assert_unexpected(info.value, "DRS object GHGAF1", problem)


def test_drs_object_without_s3_method_names_it() -> None:
    body = _drs(access_methods=[{"type": "https", "access_url": {"url": "u"}}])

    with pytest.raises(ApiError, match="DRS object GHGAF1: no s3 access URL"):
        parse_drs_object("GHGAF1", body, None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([VALUES], "field 'wps_api_url' missing or not str"),
        ({**VALUES, "dcs_api_url": None}, "field 'dcs_api_url' missing or not str"),
        ({**VALUES, "crypt4gh_public_keys": ["a2V5"]}, "'crypt4gh_public_keys'"),
        (
            {**VALUES, "crypt4gh_public_keys": {"HD01": 5}},
            "field 'crypt4gh_public_keys' has a value that is not a string",
        ),
    ],
)
def test_malformed_well_known_values_are_api_error(body: Any, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_well_known(body)

    assert_unexpected(info.value, "well-known values", problem)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("upload", "not a JSON object"),
        ({"files": ["GHGAF1"]}, "field 'files' is not an object"),
        ({"files": {"GHGAF1": None}}, "field 'files' has a value that is not a str"),
        ({"type": ["upload"]}, "field 'type' missing or not str"),
        ({"file_upload_box_id": 5}, "field 'file_upload_box_id' missing or not str"),
        (
            {"research_data_upload_box_id": {}},
            "field 'research_data_upload_box_id' missing or not str",
        ),
    ],
)
def test_malformed_work_package_is_api_error(body: Any, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_work_package("WP1", body)

    assert_unexpected(info.value, "work package WP1", problem)


def test_work_package_null_fields_are_absent() -> None:
    body = {"files": None, "type": None, "file_upload_box_id": None}

    package = parse_work_package("WP1", body)

    assert (package.files, package.type, package.file_upload_box_id) == ({}, None, None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [('"aGVhZGVy', "not JSON"), ('"aGVhZGVy" 1', "not JSON"), ("%%%", "base64")],
)
def test_malformed_envelope_is_api_error(text: str, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_envelope(text, "GHGAF1")

    assert_unexpected(info.value, "the envelope of GHGAF1", problem)


@pytest.mark.parametrize(
    "text",
    [
        '{"exception_id": ["boxNotFound"]}',
        '{"exception_id": 7, "detail": "d"}',
        '["boxNotFound"]',
        "<html>busy</html>",
    ],
)
def test_error_body_of_odd_shape_maps_by_status(text: str) -> None:
    err = error_for(500, text, "listing the upload box")

    assert type(err) is ApiError
    assert err.exception_id is None
    assert str(err).startswith("listing the upload box: the service answered HTTP 500")
