"""The sandbox's state directory: what it holds, and that it survives restarts."""

import json
import threading
from pathlib import Path

import pytest

from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import ConfigError
from snakemake_ghga.sandbox import Sandbox
from snakemake_ghga.sandbox.state import StateStore
from tests.conftest import KeyPair
from tests.support.ghga_http import GhgaHttpDriver


def test_start_writes_wkvs_url_and_hub_key_pair(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "state") as running:
        url = running.wkvs_url
        public = running.hub_public_key

    state = tmp_path / "state"
    assert (state / "wkvs_url").read_text().strip() == url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/.well-known")
    assert keys.load_public_key(state / "hub.pub") == public
    assert keys.public_key_of(keys.load_private_key(state / "hub.sec")) == public
    assert (state / "hub.sec").stat().st_mode & 0o077 == 0


def test_tokens_accessions_and_keys_survive_a_restart(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello sandbox")
    with Sandbox(tmp_path / "state") as first:
        token = first.upload_token(user_keys.public)
        accession = first.add_file(tmp_path / "a.txt")
        hub_key = first.hub_public_key

    with Sandbox(tmp_path / "state") as second:
        driver = GhgaHttpDriver(second.wkvs_url, token, user_keys.secret)
        listing = driver.call("GET", driver.box_path, driver.upload_wot("view"))
        download = second.download_token(user_keys.public)

    assert listing.status_code == 200
    assert second.hub_public_key == hub_key
    assert [a.accession for a in second.accessions()] == [accession]
    assert download.count(":") == 1


def test_upload_token_reuses_the_default_box_unless_asked(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    sandbox = Sandbox(tmp_path / "state")

    sandbox.upload_token(user_keys.public)
    sandbox.upload_token(user_keys.public)
    sandbox.upload_token(user_keys.public, new_box=True)

    assert len(sandbox.boxes()) == 2


def test_download_token_for_unknown_accession_is_a_config_error(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    sandbox = Sandbox(tmp_path / "state")

    with pytest.raises(ConfigError, match="GHGAF999"):
        sandbox.download_token(user_keys.public, ["GHGAF999"])


def test_state_directory_keeps_its_object_store(tmp_path: Path) -> None:
    Sandbox(tmp_path / "state")

    with pytest.raises(ConfigError, match="keeps its objects in files"):
        Sandbox(tmp_path / "state", s3_endpoint_url="http://127.0.0.1:9")


def test_transactions_from_two_stores_do_not_lose_updates(tmp_path: Path) -> None:
    stores = [StateStore(tmp_path), StateStore(tmp_path)]

    def bump(store: StateStore) -> None:
        for _ in range(50):
            with store.transaction() as state:
                state["next_accession_number"] += 1

    threads = [threading.Thread(target=bump, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    on_disk = json.loads((tmp_path / "state.json").read_text())
    assert on_disk["next_accession_number"] == 101


def test_failed_transaction_leaves_state_unchanged(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with store.transaction() as state:
        state["next_accession_number"] = 5

    def fail_midway() -> None:
        with store.transaction() as state:
            state["next_accession_number"] = 99
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()

    assert store.snapshot()["next_accession_number"] == 5


def test_interrupted_interrogation_resumes_on_start(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    with Sandbox(tmp_path / "state") as first:
        driver = GhgaHttpDriver(
            first.wkvs_url, first.upload_token(user_keys.public), user_keys.secret
        )
        upload = driver.encrypt(tmp_path / "a.bin", "a.bin", 5 * 1024**2, tmp_path)
        first._interrogator.submit = lambda file_id: None  # type: ignore[method-assign]
        _, answer = driver.upload(upload)
        assert answer.status_code == 204
        assert first.uploads()[0].state == "inbox"

    with Sandbox(tmp_path / "state") as second:
        settled = second.wait_interrogated("a.bin", 20)

    assert settled.state == "interrogated"
