"""TransferConfig validation."""

from pathlib import Path

import pytest

from snakemake_ghga.config import MiB, TransferConfig
from snakemake_ghga.errors import ConfigError


def test_defaults_leave_part_size_workers_and_files_to_the_engine() -> None:
    config = TransferConfig()
    assert (config.part_size_bytes, config.max_workers) == (None, None)
    assert config.max_files_in_flight is None
    assert config.worker_cap == 24  # WORKER_CAP: memory allows it beside 16 downloads
    assert (config.upload_files_in_flight, config.download_files_in_flight) == (5, 16)


def test_given_values_fix_workers_and_files() -> None:
    config = TransferConfig(max_workers=3, max_files_in_flight=9)
    assert config.worker_cap == 3
    assert (config.upload_files_in_flight, config.download_files_in_flight) == (5, 9)
    assert TransferConfig(max_files_in_flight=2).upload_files_in_flight == 2


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
