"""Fixtures for the reliability suite: one sandbox world per module."""

from collections.abc import Iterator

import pytest

from .harness import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    running = World.start(tmp_path_factory.mktemp("world"))
    yield running
    running.stop()
