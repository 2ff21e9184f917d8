"""Snakemake storage plugin `ghga`: GHGA files as inputs, upload boxes as outputs.

Snakemake discovers this package by its name (`snakemake_storage_plugin_ghga`)
and reads the three classes below. The plugin is a thin adapter: transfers,
encryption, retries and verification are `snakemake_ghga.client.GhgaClient`'s.

    storage.ghga("ghga://GHGAF12345678901234")          # input: decrypted file
    storage.ghga("ghga://upload/results/sample1.vcf")   # output: uploaded file
"""

from snakemake_storage_plugin_ghga.provider import StorageProvider
from snakemake_storage_plugin_ghga.settings import StorageProviderSettings
from snakemake_storage_plugin_ghga.storage_object import StorageObject

__all__ = ["StorageObject", "StorageProvider", "StorageProviderSettings"]
