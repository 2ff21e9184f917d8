"""Fault soak (issue 8, item 2), reduced for CI: 50 files of 1 B..12 MiB through
a sandbox that injects 503s and mid-body cuts (5 %), signs 2 s URLs and issues
work-order tokens that live 3 s, so all three expire and fail during the run."""

from collections.abc import Iterator

import pytest

from snakemake_ghga.sandbox import tokens

from .harness import MiB, World, run_soak, soak_sizes

pytestmark = pytest.mark.slow


@pytest.fixture
def faulty(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setattr(tokens, "WORK_ORDER_TOKEN_VALID_S", 3)
    running = World.start(
        tmp_path_factory.mktemp("soak"), fault_rate=0.05, url_ttl_s=2, seed=5
    )
    yield running
    running.stop()


def test_fault_soak_every_file_byte_identical_and_nothing_misreported(
    faulty: World,
) -> None:
    result = run_soak(faulty, soak_sizes(5, 50, 12 * MiB))
    assert result.faults_injected > 0  # the soak really was faulty
    assert result.wrongly_reported_done == []
    assert result.not_identical == []
    assert result.tracebacks == 0
    assert result.last_exit == (0, 0), result
