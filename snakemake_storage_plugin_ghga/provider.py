"""`StorageProvider`: validated settings, example queries, and the shared catalog.

One provider exists per settings tag (e.g. one per work package). It validates
its settings in `__post_init__` (never in the settings dataclass), loads the key
pair once, and owns the `RemoteCatalog` whose clients do all transfers.

At import time this module loads only light, stdlib-backed parts of
`snakemake_ghga` (errors, redact): Snakemake imports every installed plugin on
every call, including `snakemake --help`.
"""

from typing import TYPE_CHECKING, Any

from snakemake_interface_storage_plugins.common import Operation
from snakemake_interface_storage_plugins.storage_provider import (
    ExampleQuery,
    QueryType,
    StorageProviderBase,
    StorageQueryValidationResult,
)

from snakemake_ghga.redact import redact_text
from snakemake_storage_plugin_ghga.catalog import RemoteCatalog, TransferClient
from snakemake_storage_plugin_ghga.query import invalid_reason
from snakemake_storage_plugin_ghga.settings import StorageProviderSettings
from snakemake_storage_plugin_ghga.storage_object import StorageObject

if TYPE_CHECKING:
    from snakemake_storage_plugin_ghga.checks import ProviderSetup

__all__ = ["StorageProvider"]

_DEFAULT_REQUESTS_PER_SECOND = 10.0


class StorageProvider(StorageProviderBase):
    """The `ghga` storage provider."""

    settings: StorageProviderSettings | None

    def __post_init__(self) -> None:
        # Imported here, not at module level: Snakemake imports every installed
        # plugin on every call (even --help), so key/crypto code loads only when
        # a workflow actually uses this provider.
        from snakemake_storage_plugin_ghga.checks import check_settings

        self.setup: ProviderSetup = check_settings(self.settings, tag=self._tag())
        self.catalog = RemoteCatalog(
            self._make_client, self.setup.download_token, self.setup.upload_token
        )

    def _tag(self) -> str | None:
        """Return the provider's tag: Snakemake names its local prefix after it."""
        name = self.local_prefix.name
        return None if name == "ghga" else name

    def _make_client(self, token: str) -> TransferClient:
        from snakemake_ghga.client import GhgaClient

        return GhgaClient(
            wkvs_url=self.setup.wkvs_url,
            token=token,
            my_secret_key=self.setup.my_secret_key,
            my_public_key=self.setup.my_public_key,
            ghga_public_key=self.setup.ghga_public_key,
            config=self.setup.config,
        )

    @classmethod
    def get_storage_object_cls(cls) -> type[StorageObject]:
        """Return the object class (it lives in its own module)."""
        return StorageObject

    @classmethod
    def example_queries(cls) -> list[ExampleQuery]:
        """Return one input and one output example for the plugin catalog."""
        return [
            ExampleQuery(
                query="ghga://GHGAF12345678901234",
                description="A file of your download work package, by accession. "
                "The local copy is the decrypted, checksum-verified file, named "
                "<accession><extension> (e.g. GHGAF12345678901234.bam).",
                type=QueryType.INPUT,
            ),
            ExampleQuery(
                query="ghga://upload/results/sample1.vcf.gz",
                description="A file to upload (encrypted on the fly) into the "
                "research data upload box of your upload work package, under the "
                "alias results/sample1.vcf.gz. Aliases may contain '/'.",
                type=QueryType.OUTPUT,
            ),
        ]

    @classmethod
    def is_valid_query(cls, query: str) -> StorageQueryValidationResult:
        """Accept `ghga://<accession>` and `ghga://upload/<alias>` (wildcards ok)."""
        reason = invalid_reason(query)
        return StorageQueryValidationResult(
            query=query, valid=reason is None, reason=reason
        )

    def safe_print(self, query: str) -> str:
        """Return the query for messages; anything secret-looking is redacted."""
        return redact_text(query.split("?", 1)[0].split("#", 1)[0])

    def use_rate_limiter(self) -> bool:
        """Throttle only if the user set --storage-ghga-max-requests-per-second.

        The catalog already answers most questions from one listing, and the
        engine backs off on HTTP 429 itself.
        """
        return bool(self.settings and self.settings.max_requests_per_second)

    def default_max_requests_per_second(self) -> float:
        """Return the rate used if throttling is switched on without a value."""
        return _DEFAULT_REQUESTS_PER_SECOND

    def rate_limiter_key(self, query: str, operation: Operation) -> Any:
        """Throttle per GHGA deployment (all queries share its API)."""
        return self.setup.wkvs_url
