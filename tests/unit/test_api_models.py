"""Parsing of GHGA response bodies: malformed shapes become a clear ApiError."""

import base64
from typing import Any

import pytest

from snakemake_ghga.errors import ApiError
from snakemake_ghga.ghga.models import (
    decode_envelope,
    download_file_name,
    error_for,
    jwt_claims,
    parse_drs_object,
    parse_json,
    parse_well_known,
    parse_work_package,
)

S3 = {"type": "s3", "access_url": {"url": "http://s3/x?sig=1"}}
SHA = "ab" * 32
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
        "checksums": [{"type": "sha-256", "checksum": SHA}],
        "access_methods": [S3],
    }
    body.update(changes)
    return body


def test_drs_object_takes_first_s3_url_and_sha256() -> None:
    body = _drs(access_methods=["junk", {"type": "https"}, S3])

    drs = parse_drs_object("GHGAF1", body, 10.0)

    assert (drs.size, drs.sha256, drs.url, drs.max_age_s) == (
        100,
        SHA,
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
        (_drs(size=-1), "field 'size' (-1) is not a plausible byte count"),
        (_drs(size=2**64), f"field 'size' ({2**64}) is not a plausible byte count"),
        (_drs(access_methods=None), "field 'access_methods' missing or not list"),
        (_drs(access_methods=S3), "field 'access_methods' missing or not list"),
        (_drs(access_methods=[{"type": "s3"}]), "field 'access_url' missing"),
        (_drs(access_methods=[{"type": "s3", "access_url": None}]), "'access_url'"),
        (_drs(access_methods=[{"type": "s3", "access_url": "u"}]), "'access_url'"),
        (_drs(access_methods=[{"type": "s3", "access_url": {}}]), "field 'url'"),
        (_drs(checksums={"type": "sha-256"}), "field 'checksums' is not a list"),
        (_drs(checksums=["ab"]), "an entry of 'checksums' is not an object"),
        (_drs(checksums=[{"type": "sha-256", "checksum": 5}]), "field 'checksum'"),
        (
            _drs(checksums=[{"type": "sha-256", "checksum": "ab"}]),
            "the SHA-256 'ab' is not 64 hex digits",
        ),
        (
            _drs(checksums=[{"type": "sha-256", "checksum": "g" * 64}]),
            "is not 64 hex digits",
        ),
    ],
)
def test_malformed_drs_object_is_api_error(body: Any, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_drs_object("GHGAF1", body, None)

    assert_unexpected(info.value, "DRS object GHGAF1", problem)


def test_drs_object_sha256_is_lowercased() -> None:
    body = _drs(checksums=[{"type": "sha-256", "checksum": SHA.upper()}])

    assert parse_drs_object("GHGAF1", body, None).sha256 == SHA


@pytest.mark.parametrize(
    ("accession", "extension"),
    [
        ("GHGAF00000000000001", ".bam"),
        ("GHGAF1", ""),
        ("GHGAF1", ".fastq.gz"),
        ("EGAF_1-2.v3", ".tar-x_y"),
    ],
)
def test_download_file_name_of_plain_names(accession: str, extension: str) -> None:
    assert download_file_name(accession, extension) == accession + extension


@pytest.mark.parametrize(
    ("accession", "extension", "named"),
    [
        ("../escaped", ".txt", "the accession '../escaped'"),
        ("/tmp/abs", ".txt", "the accession '/tmp/abs'"),
        ("a/b", "", "the accession 'a/b'"),
        ("..", "", "the accession '..'"),
        (".hidden", "", "the accession '.hidden'"),
        ("", ".bam", "the accession ''"),
        ("GHGAF1\x1b[2J", "", "the accession 'GHGAF1\\x1b[2J'"),
        ("GHGAF1\n", "", "the accession 'GHGAF1\\n'"),
        ("G" * 200, "", "the accession 'GGGG"),
        ("GHGAF1", "/../../escaped.txt", "the file extension '/../../escaped.txt'"),
        ("GHGAF1", ".txt/..", "the file extension '.txt/..'"),
        ("GHGAF1", "bam", "the file extension 'bam'"),
        ("GHGAF1", ".a.b.c.d.e", "the file extension '.a.b.c.d.e'"),
        ("GHGAF1", ".b\u00e4m", "the file extension '.b\\xe4m'"),
    ],
)
def test_download_file_name_refuses_paths_and_odd_names(
    accession: str, extension: str, named: str
) -> None:
    with pytest.raises(ApiError) as info:
        download_file_name(accession, extension)

    message = str(info.value)
    assert message.startswith(f"the work package lists {named}")
    assert "not a plain file name" in message
    assert message.isprintable() and len(message) < 250


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


def test_json_nested_too_deep_is_api_error() -> None:
    with pytest.raises(ApiError) as info:
        parse_json("[" * 100_000, "work package W1")

    assert_unexpected(info.value, "work package W1", "not JSON")


def test_jwt_nested_too_deep_has_no_claims() -> None:
    payload = base64.urlsafe_b64encode(b"[" * 100_000).decode().rstrip("=")

    assert jwt_claims(f"e30.{payload}.sig") == {}


@pytest.mark.parametrize(
    "text",
    [
        '{"exception_id": ["boxNotFound"]}',
        '{"exception_id": 7, "detail": "d"}',
        '["boxNotFound"]',
        "<html>busy</html>",
        "[" * 100_000,  # nested too deep for the json module
    ],
)
def test_error_body_of_odd_shape_maps_by_status(text: str) -> None:
    err = error_for(500, text, "listing the upload box")

    assert type(err) is ApiError
    assert err.exception_id is None
    assert str(err).startswith("listing the upload box: the service answered HTTP 500")
