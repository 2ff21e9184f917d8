"""Query parsing and validation of the `ghga` plugin (pure, no I/O)."""

import pytest

from snakemake_storage_plugin_ghga import StorageProvider
from snakemake_storage_plugin_ghga.query import (
    GhgaQuery,
    QueryKind,
    has_wildcards,
    invalid_reason,
    parse_query,
)


@pytest.mark.parametrize(
    "query",
    [
        "ghga://GHGAF12345678901234",
        "ghga://GHGAF1",
        "ghga://{accession}",
        "ghga://GHGAF{number}",
        "ghga://GH{rest}",
        "ghga://upload/sample1.bam",
        "ghga://upload/results/2024/sample1.vcf.gz",
        "ghga://upload/{sample}.txt",
        "ghga://upload/{dir}/{sample,[a-z]+}.txt",
        "ghga://upload/a_b-c+d=e@f,g~h.txt",
    ],
)
def test_is_valid_query_accepts_both_forms_and_wildcards(query: str) -> None:
    result = StorageProvider.is_valid_query(query)

    assert result.valid, result.reason
    assert result.reason is None


@pytest.mark.parametrize(
    ("query", "reason_part"),
    [
        ("s3://bucket/key", "starts with 'ghga://'"),
        ("GHGAF123", "starts with 'ghga://'"),
        ("ghga://", "must be followed by a file accession"),
        ("ghga://ghgaf123", "is not a file accession"),
        ("ghga://XYZ{n}", "is not a file accession"),
        ("ghga://GHGAD12345", "only files (GHGAF…) can be transferred"),
        ("ghga://GHGAF1/extra", "outputs are written as ghga://upload/<alias>"),
        ("ghga://GHGAF1?token=abc", "only letters and digits"),
        ("ghga://upload", "an alias must follow"),
        ("ghga://upload/", "an alias must follow"),
        ("ghga://upload//x", "must not contain '//'"),
        ("ghga://upload/a/../b", "'/../'"),
        ("ghga://upload/./b", "'/./'"),
        ("ghga://upload/a/", "must not start or end with '/'"),
        ("ghga://upload/a b", "contains ' '"),
        ("ghga://upload/a?x=1", "contains '?'"),
        ("ghga://upload/" + "a" * 1025, "longer than 1024"),
    ],
)
def test_is_valid_query_rejects_with_reason(query: str, reason_part: str) -> None:
    result = StorageProvider.is_valid_query(query)

    assert not result
    assert result.reason is not None
    assert reason_part in result.reason


def test_parse_query_accession() -> None:
    assert parse_query("ghga://GHGAF1") == GhgaQuery(QueryKind.ACCESSION, "GHGAF1")


def test_parse_query_upload_keeps_slashes_in_alias() -> None:
    parsed = parse_query("ghga://upload/a/b/c.txt")

    assert parsed == GhgaQuery(QueryKind.UPLOAD, "a/b/c.txt")
    assert parsed.is_upload


def test_parse_query_invalid_raises_value_error_with_reason() -> None:
    with pytest.raises(ValueError, match="invalid GHGA query 'ghga://x'"):
        parse_query("ghga://x")


def test_invalid_reason_none_for_valid_query() -> None:
    assert invalid_reason("ghga://upload/x") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{a}", True), ("x{a,[0-9]+}y", True), ("GHGAF1", False), ("a}b{", False)],
)
def test_has_wildcards(text: str, expected: bool) -> None:
    assert has_wildcards(text) is expected
