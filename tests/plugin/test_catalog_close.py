"""Closing the provider's clients: joined when asked, never from the garbage collector.

A finalizer may run inside another thread's start-up; joining worker threads
there deadlocked a test run, so the collector's close must not wait.
"""

import gc

from snakemake_storage_plugin_ghga.catalog import RemoteCatalog
from tests.plugin.conftest import RecordingClient


def test_collected_catalog_closes_its_clients_without_joining() -> None:
    client = RecordingClient()
    catalog = RemoteCatalog(lambda _token: client, "download-token", None)
    catalog.client("download")
    del catalog
    gc.collect()
    assert client.close_waits == [False]


def test_explicit_close_joins_once_and_the_collector_does_nothing_more() -> None:
    client = RecordingClient()
    catalog = RemoteCatalog(lambda _token: client, "download-token", None)
    catalog.client("download")
    catalog.close()
    catalog.close()
    del catalog
    gc.collect()
    assert client.close_waits == [True]
