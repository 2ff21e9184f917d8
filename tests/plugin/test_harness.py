"""The storage interface's own test harness against the sandbox.

Two variants, as for other archives: read-only on archived accessions, and
store-only on an upload box (`remove()` is exercised too: box uploads are
deletable).
"""

import logging
from pathlib import Path

import pytest
from snakemake_interface_storage_plugins.tests import TestStorageBase

from snakemake_storage_plugin_ghga import StorageProvider, StorageProviderSettings
from tests.plugin.conftest import SandboxUser

LOGGER = logging.getLogger(__name__)


class _SandboxHarness(TestStorageBase):
    user: SandboxUser

    @pytest.fixture(autouse=True)
    def _use_sandbox(self, sandbox_user: SandboxUser) -> None:
        self.user = sandbox_user
        self.settings = sandbox_user.settings()

    def get_storage_provider_cls(self) -> type[StorageProvider]:
        return StorageProvider

    def get_storage_provider_settings(self) -> StorageProviderSettings:
        return self.settings


class TestReadArchive(_SandboxHarness):
    """Read-only: accessions of a download work package."""

    __test__ = True
    retrieve_only = True
    delete = False

    def get_query(self, tmp_path: Path) -> str:
        return "ghga://" + sorted(self.user.contents)[-1]

    def get_query_not_existing(self, tmp_path: Path) -> str:
        return "ghga://GHGAF99999999999999"


class TestStoreUploadBox(_SandboxHarness):
    """Store-only: aliases in the upload box; `remove()` deletes the upload."""

    __test__ = True
    store_only = True
    delete = True

    def get_query(self, tmp_path: Path) -> str:
        return f"ghga://upload/harness/{tmp_path.name}/test.txt"

    def get_query_not_existing(self, tmp_path: Path) -> str:
        return "ghga://upload/harness/never-uploaded.txt"
