"""Fixtures for the security tests: the sandbox, and another local user."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import _restore_logging, sandbox  # noqa: F401

OTHER_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_other_user(*argv: str, stdin: str | None = None) -> None:
    """Run ``argv`` as uid 65534 (nobody): the attacker on the same host."""
    subprocess.run([*OTHER_USER, *argv], input=stdin, text=True, check=True)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every local user can write to, like /tmp (mode 1777).

    Made outside pytest's 0700 tmp_path, so the other user can reach it.
    """
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another local user")
    path = Path(tempfile.mkdtemp(prefix="ghga-shared-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)
