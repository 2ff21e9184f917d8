"""TransferConfig validation."""

from pathlib import Path

import pytest

from snakemake_ghga.config import MiB, TransferConfig
from snakemake_ghga.errors import ConfigError


def test_defaults_are_valid() -> None:
    config = TransferConfig()
    assert (config.part_size_bytes, config.max_workers) == (64 * MiB, 4)


@pytest.mark.parametrize("part_size", [5 * MiB - 1, 5 * 1024 * MiB + 1])
def test_part_size_out_of_range_is_config_error(part_size: int) -> None:
    with pytest.raises(ConfigError, match="out of range") as info:
        TransferConfig(part_size_bytes=part_size)
    assert "--part-size" in str(info.value)


@pytest.mark.parametrize(
    "field", ["max_workers", "max_files_in_flight", "max_attempts"]
)
def test_counts_below_one_are_config_errors(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be at least 1"):
        TransferConfig(**{field: 0})  # type: ignore[arg-type]


def test_missing_tmp_dir_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        TransferConfig(tmp_dir=tmp_path / "missing")
    assert TransferConfig(tmp_dir=tmp_path).tmp_dir == tmp_path
