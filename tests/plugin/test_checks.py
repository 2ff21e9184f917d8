"""Settings validation in the provider: each error names the setting and the fix."""

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_ghga.config import MiB
from snakemake_storage_plugin_ghga import StorageProviderSettings
from snakemake_storage_plugin_ghga.checks import check_settings, option_name
from tests.conftest import KeyPair, make_key_pair
from tests.plugin.conftest import TOKEN, plugin_settings


def _settings(keys: KeyPair, **changes: object) -> StorageProviderSettings:
    """Download-only settings with a trailing '/' on the URL."""
    values: dict[str, object] = {
        "wkvs_url": "http://127.0.0.1:8080/.well-known/",
        "upload_token": None,
    }
    values.update(changes)
    return plugin_settings(keys, **values)


def _error(settings: StorageProviderSettings, argv: list[str] | None = None) -> str:
    with pytest.raises(WorkflowError) as info:
        check_settings(settings, argv=argv or [])
    return str(info.value)


def test_check_settings_valid_builds_setup(user_keys: KeyPair, tmp_path: Path) -> None:
    settings = _settings(user_keys, part_size=16, max_workers=3, tmp_dir=tmp_path)

    setup = check_settings(settings, argv=[])

    assert setup.wkvs_url == "http://127.0.0.1:8080/.well-known"
    assert setup.my_public_key == user_keys.public
    assert setup.my_secret_key == user_keys.secret
    assert setup.config.part_size_bytes == 16 * MiB
    assert setup.config.max_workers == 3
    assert setup.config.tmp_dir == tmp_path
    assert setup.upload_token is None


def test_check_settings_defaults_come_from_engine(user_keys: KeyPair) -> None:
    setup = check_settings(_settings(user_keys), argv=[])

    assert setup.config.part_size_bytes is None  # chosen per file
    assert setup.config.max_workers is None  # adapted while moving


def test_check_settings_setup_repr_hides_secrets(user_keys: KeyPair) -> None:
    setup = check_settings(_settings(user_keys, upload_token=TOKEN), argv=[])

    text = repr(setup)

    assert TOKEN not in text
    assert repr(user_keys.secret) not in text
    assert "token" not in text


def test_check_settings_none_means_nothing_configured() -> None:
    message = _error(None)

    assert "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN" in message


def test_check_settings_without_tokens_names_both_env_vars(user_keys: KeyPair) -> None:
    message = _error(_settings(user_keys, download_token=None))

    assert "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN" in message
    assert "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN" in message


@pytest.mark.parametrize(
    "flag", ["--storage-ghga-download-token", "--storage-ghga-upload-token"]
)
def test_check_settings_token_on_command_line_refused(
    user_keys: KeyPair, flag: str
) -> None:
    message = _error(_settings(user_keys), argv=["snakemake", flag, TOKEN])

    assert f"{flag} was given on the command line" in message
    assert "revoke" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("", "is empty"),
        ("ftp://data.ghga.de/.well-known", "is not an http(s) URL"),
        ("https://user:pw@data.ghga.de/", "must not contain credentials"),
        ("https://data.ghga.de/?x=1", "must not contain credentials, a query"),
        ("http://data.ghga.de/.well-known", "uses plain http for data.ghga.de"),
    ],
)
def test_check_settings_bad_wkvs_url(user_keys: KeyPair, url: str, part: str) -> None:
    message = _error(_settings(user_keys, wkvs_url=url))

    assert part in message
    assert "--storage-ghga-wkvs-url (or SNAKEMAKE_STORAGE_GHGA_WKVS_URL)" in message


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_check_settings_http_allowed_on_loopback(user_keys: KeyPair, host: str) -> None:
    setup = check_settings(_settings(user_keys, wkvs_url=f"http://{host}:1/"), argv=[])

    assert setup.wkvs_url == f"http://{host}:1"


@pytest.mark.parametrize("name", ["my_public_key", "my_private_key"])
def test_check_settings_missing_key_setting(user_keys: KeyPair, name: str) -> None:
    message = _error(_settings(user_keys, **{name: None}))

    assert f"{option_name(name)} is not set" in message


def test_check_settings_missing_key_file_names_path(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.sec"

    message = _error(_settings(user_keys, my_private_key=missing))

    assert str(missing) in message


def test_check_settings_mismatched_key_pair(user_keys: KeyPair, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path / "other", "other")

    message = _error(_settings(user_keys, my_public_key=other.public_path))

    assert "does not belong to the private key" in message
    assert "--storage-ghga-my-public-key" in message


def test_check_settings_encrypted_key_uses_passphrase_env(
    user_keys: KeyPair,
    reference_keys: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = reference_keys("locked", "s3cret-pass")
    settings = _settings(
        user_keys,
        my_public_key=base.with_suffix(".pub"),
        my_private_key=base.with_suffix(".sec"),
    )
    monkeypatch.setenv("C4GH_PASSPHRASE", "wrong")

    message = _error(settings)
    monkeypatch.setenv("C4GH_PASSPHRASE", "s3cret-pass")
    setup = check_settings(settings, argv=[])

    assert "wrong passphrase" in message
    assert len(setup.my_secret_key) == 32


def test_check_settings_bad_ghga_public_key(user_keys: KeyPair, tmp_path: Path) -> None:
    message = _error(_settings(user_keys, ghga_public_key=tmp_path / "hub.pub"))

    assert message.startswith("--storage-ghga-ghga-public-key")


@pytest.mark.parametrize(
    ("name", "value", "bounds"),
    [
        ("part_size", 4, "from 5 to 5120"),
        ("part_size", 5121, "from 5 to 5120"),
        ("max_workers", 0, "from 1 to 64"),
        ("max_workers", 65, "from 1 to 64"),
    ],
)
def test_check_settings_number_out_of_range(
    user_keys: KeyPair, name: str, value: int, bounds: str
) -> None:
    message = _error(_settings(user_keys, **{name: value}))

    assert message.startswith(f"--storage-ghga-{name.replace('_', '-')} is {value}")
    assert bounds in message


def test_check_settings_tmp_dir_must_exist(user_keys: KeyPair, tmp_path: Path) -> None:
    message = _error(_settings(user_keys, tmp_dir=tmp_path / "missing"))

    assert "--storage-ghga-tmp-dir" in message
    assert "is not an existing directory" in message


def test_option_name_mentions_env_var_only_for_env_settings() -> None:
    assert option_name("part_size") == "--storage-ghga-part-size"
    assert option_name("my_private_key").endswith(
        "(or SNAKEMAKE_STORAGE_GHGA_MY_PRIVATE_KEY)"
    )


def test_check_settings_reads_sys_argv_by_default(
    user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["snakemake", "--storage-ghga-upload-token=x"])

    with pytest.raises(WorkflowError, match="was given on the command line"):
        check_settings(_settings(user_keys))


def test_check_settings_reads_plugin_variables_itself(
    user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No setting is env_var to Snakemake: the plugin reads the variables.
    monkeypatch.setenv("SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN", TOKEN)
    monkeypatch.setenv("SNAKEMAKE_STORAGE_GHGA_WKVS_URL", "http://127.0.0.1:7/wk")
    monkeypatch.setenv(
        "SNAKEMAKE_STORAGE_GHGA_MY_PRIVATE_KEY", str(user_keys.secret_path)
    )
    settings = StorageProviderSettings(my_public_key=user_keys.public_path)

    setup = check_settings(settings, argv=[])

    assert setup.upload_token == TOKEN
    assert setup.download_token is None
    assert setup.wkvs_url == "http://127.0.0.1:7/wk"
    assert setup.my_secret_key == user_keys.secret


def test_check_settings_option_wins_over_variable(
    user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAKEMAKE_STORAGE_GHGA_WKVS_URL", "http://127.0.0.1:7/wk")

    setup = check_settings(_settings(user_keys), argv=[])

    assert setup.wkvs_url == "http://127.0.0.1:8080/.well-known"


def test_check_settings_default_wkvs_url(user_keys: KeyPair) -> None:
    setup = check_settings(_settings(user_keys, wkvs_url=None), argv=[])

    assert setup.wkvs_url == "https://data.ghga.de/.well-known"


def test_check_settings_tagged_variable_gives_each_tag_its_token(
    user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN", "[wp1::A:1, wp2::B:2]")
    settings = _settings(user_keys, download_token=None)

    tokens = [
        check_settings(settings, [], tag).download_token for tag in ("wp1", "wp2")
    ]

    assert tokens == ["A:1", "B:2"]


def _token_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "download.token"
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    return path


def test_check_settings_token_file_is_read(user_keys: KeyPair, tmp_path: Path) -> None:
    path = _token_file(tmp_path, 0o600)

    setup = check_settings(
        _settings(user_keys, download_token=None, download_token_file=path), argv=[]
    )

    assert setup.download_token == TOKEN


def test_check_settings_token_file_readable_by_others_refused(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    path = _token_file(tmp_path, 0o644)

    message = _error(
        _settings(user_keys, download_token=None, download_token_file=path)
    )

    assert message.startswith(
        f"--storage-ghga-download-token-file: {path} is mode 0644"
    )
    assert f"chmod 600 {path}" in message
    assert TOKEN not in message


def test_check_settings_missing_token_file_names_host(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.token"

    message = _error(_settings(user_keys, upload_token_file=missing))

    assert f"{missing} does not exist on host {socket.gethostname()}" in message


def test_check_settings_missing_key_names_path_and_host(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    # e.g. a key on the submit host's local disk, not mounted on the node
    missing = tmp_path / "nope.pub"

    message = _error(_settings(user_keys, my_public_key=missing))

    assert message == (
        f"--storage-ghga-my-public-key (or SNAKEMAKE_STORAGE_GHGA_MY_PUBLIC_KEY): "
        f"{missing} does not exist on host {socket.gethostname()}; on a cluster, "
        "put the key where every node sees it (a shared file system) and give an "
        "absolute path"
    )
    assert "\n" not in message


def test_check_settings_default_upload_state_dir_in_working_directory(
    user_keys: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    setup = check_settings(_settings(user_keys), argv=[])

    assert setup.config.tmp_dir == tmp_path / ".snakemake" / "storage-ghga-uploads"
    assert setup.config.tmp_dir.is_dir()
