"""The settings dataclass as Snakemake parses it: types, env vars, tags, secrets."""

import ast
import dataclasses
import inspect
from pathlib import Path

import configargparse
import pytest
from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

from snakemake_storage_plugin_ghga import StorageProviderSettings, settings
from tests.plugin.conftest import TOKEN

SECRET = TOKEN


def _parse(argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plugin = StoragePluginRegistry().get_plugin("ghga")
    parser = configargparse.ArgumentParser()
    plugin.register_cli_args(parser, "storage")
    return plugin.get_settings(parser.parse_args(argv))


def test_settings_module_has_no_future_annotations() -> None:
    tree = ast.parse(inspect.getsource(settings))
    futures = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "__future__"
    ]

    assert futures == []


def test_settings_every_non_str_field_declares_its_type() -> None:
    for field in dataclasses.fields(StorageProviderSettings):
        if field.name == "max_requests_per_second":
            continue  # inherited from the interface
        assert "type" in field.metadata, field.name
        assert field.metadata["help"], field.name


def test_settings_repr_hides_tokens() -> None:
    value = StorageProviderSettings(download_token=SECRET, upload_token=SECRET)

    assert SECRET not in repr(value)
    assert "download_token=" not in repr(value)


def test_settings_declare_no_env_var_to_snakemake() -> None:
    # Snakemake puts `export NAME='value'` of env_var settings on the command
    # line of spawned jobs (local executor), or drops them (SLURM).
    fields = {f.name: f for f in dataclasses.fields(StorageProviderSettings)}

    assert [n for n, f in fields.items() if f.metadata.get("env_var")] == []
    for name in ("download_token", "upload_token"):
        assert fields[name].repr is False


def test_settings_parse_types_from_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = [
        "--storage-ghga-part-size", "32",
        "--storage-ghga-max-workers", "8",
        "--storage-ghga-tmp-dir", "/tmp",
        "--storage-ghga-my-public-key", "~/alice.pub",
    ]  # fmt: skip

    parsed = _parse(argv, monkeypatch, {"HOME": "/home/alice"}).get_settings(None)

    assert parsed.part_size == 32
    assert parsed.max_workers == 8
    assert parsed.tmp_dir == Path("/tmp")
    assert parsed.my_public_key == Path("/home/alice/alice.pub")


def test_settings_environment_is_left_to_the_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": SECRET,
        "SNAKEMAKE_STORAGE_GHGA_WKVS_URL": "http://127.0.0.1:1/.well-known",
    }

    parsed = _parse([], monkeypatch, env).get_settings(None)

    # Snakemake does not read them (it would pass them on to jobs in argv);
    # checks.with_environment and _token read them (tests/plugin/test_checks.py).
    assert parsed.download_token is None
    assert parsed.wkvs_url is None


def test_settings_tagged_options_for_two_work_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = [
        "--storage-ghga-max-workers", "wp2::2", "6",
        "--storage-ghga-download-token-file", "wp1::/a/token", "wp2::/b/token",
    ]  # fmt: skip

    tagged = _parse(argv, monkeypatch, {})

    assert tagged.get_settings("wp1").max_workers == 6
    assert tagged.get_settings("wp2").max_workers == 2
    assert tagged.get_settings("wp1").download_token_file == Path("/a/token")
    assert tagged.get_settings("wp2").download_token_file == Path("/b/token")


def test_settings_defaults_need_no_io() -> None:
    value = StorageProviderSettings()

    assert value.wkvs_url is None  # the plugin's default: DEFAULT_WKVS_URL
    assert value.my_private_key is None
    assert value.part_size is None
