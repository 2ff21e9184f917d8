"""Provider-level behaviour: examples, redaction, rate limiting, light imports."""

import subprocess
import sys
from collections.abc import Callable

from snakemake_interface_storage_plugins.registry import StoragePluginRegistry
from snakemake_interface_storage_plugins.storage_provider import QueryType

from snakemake_storage_plugin_ghga import StorageProvider
from tests.plugin.conftest import TOKEN

MakeProvider = Callable[..., StorageProvider]


def test_example_queries_are_valid_and_cover_input_and_output() -> None:
    examples = StorageProvider.example_queries()

    assert {e.type for e in examples} == {QueryType.INPUT, QueryType.OUTPUT}
    assert all(StorageProvider.is_valid_query(e.query) for e in examples)


def test_plugin_is_discovered_as_read_write() -> None:
    plugin = StoragePluginRegistry().get_plugin("ghga")

    assert plugin.is_read_write()
    assert plugin.storage_provider is StorageProvider


def test_safe_print_redacts_token_and_query_string(make_provider: MakeProvider) -> None:
    provider = make_provider()

    printed = [
        provider.safe_print(f"ghga://upload/{TOKEN}"),
        provider.safe_print("ghga://GHGAF1?sig=abcdef"),
    ]

    assert TOKEN not in printed[0]
    assert "<redacted-token>" in printed[0]
    assert printed[1] == "ghga://GHGAF1"


def test_print_query_of_objects_is_safe(make_provider: MakeProvider) -> None:
    obj = make_provider().object("ghga://upload/results/a.txt")

    assert obj.print_query == "ghga://upload/results/a.txt"


def test_rate_limiter_off_unless_requested(make_provider: MakeProvider) -> None:
    default = make_provider()
    throttled = make_provider(max_requests_per_second=2.0)

    assert not default.use_rate_limiter()
    assert throttled.use_rate_limiter()
    assert throttled.rate_limiter_key("ghga://GHGAF1", None) == (
        "http://127.0.0.1:9/.well-known"
    )


def test_provider_repr_and_settings_repr_hide_tokens(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider()

    text = repr(provider.settings) + repr(provider.setup) + repr(provider.catalog)

    assert TOKEN not in text


def test_importing_plugin_loads_no_key_or_client_code() -> None:
    code = (
        "import sys, snakemake_storage_plugin_ghga;"
        "heavy = [m for m in sys.modules if m.startswith(('crypt4gh', 'nacl',"
        " 'snakemake_ghga.crypt4gh.keys', 'snakemake_ghga.client', 'snakemake_ghga.ghga.api'))];"
        "print(heavy)"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert out.stdout.strip() == "[]"


def test_plugin_imports_on_interface_without_exceptions_module() -> None:
    # Interface 4.1/4.2 (allowed by our bounds) has no `exceptions` module;
    # an ImportError there would break every `snakemake` call.
    code = (
        "import sys, snakemake_interface_storage_plugins.storage_object\n"
        "sys.modules['snakemake_interface_storage_plugins.exceptions'] = None\n"
        "from snakemake_storage_plugin_ghga import storage_object as so\n"
        "err = so.FileOrDirectoryNotFoundError('p/x', 'ghga://GHGAF1')\n"
        "print(type(err).__module__, err.query, err)"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert out.stdout.strip() == (
        "snakemake_storage_plugin_ghga.storage_object ghga://GHGAF1 "
        "Storage object ghga://GHGAF1 not found in storage (local path: p/x)."
    )
