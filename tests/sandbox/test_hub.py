"""The sandbox Data Hub helpers: extensions for the official client's file names."""

import pytest

from snakemake_ghga.sandbox.hub import extension_of


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("reads.bam", ".bam"),
        ("calls.vcf.gz", ".vcf.gz"),
        ("README", ""),
        ("sample one.fastq.gz", ".fastq.gz"),
        ("weird.some-thing.txt", ".txt"),
    ],
)
def test_extension_of(name: str, extension: str) -> None:
    assert extension_of(name) == extension
