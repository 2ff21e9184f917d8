"""RunContext.hub_key: the WKVS key for a storage, checked and optionally pinned."""

import base64
from typing import Any, cast

import pytest

from snakemake_ghga.errors import ApiError, ConfigError
from snakemake_ghga.ghga.models import WellKnownValues
from snakemake_ghga.transfer.context import RunContext

KEY = bytes(range(32))


class _FakeApi:
    def __init__(self, announced: str) -> None:
        self.values = WellKnownValues("wps", "ucs", "dcs", {"HD01": announced})

    def well_known(self) -> WellKnownValues:
        return self.values


def _context(announced: str, pinned: bytes | None = None) -> RunContext:
    return RunContext(
        api=cast(Any, _FakeApi(announced)),
        engine=cast(Any, None),
        config=cast(Any, None),
        my_secret_key=b"",
        my_public_key=b"",
        ghga_public_key=pinned,
        progress=cast(Any, None),
    )


def test_announced_key_is_decoded() -> None:
    assert _context(base64.b64encode(KEY).decode()).hub_key("HD01") == KEY


@pytest.mark.parametrize("announced", ["not base64!", "a2V5", ""])
def test_announced_key_that_is_no_crypt4gh_key_is_an_api_error(announced: str) -> None:
    with pytest.raises(ApiError, match="not a base64 32-byte Crypt4GH key"):
        _context(announced).hub_key("HD01")


def test_unknown_storage_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="no public key for storage 'HD02'"):
        _context(base64.b64encode(KEY).decode()).hub_key("HD02")


def test_pinned_key_that_differs_is_a_config_error() -> None:
    context = _context(base64.b64encode(KEY).decode(), pinned=bytes(32))
    with pytest.raises(ConfigError, match="differs from the pinned"):
        context.hub_key("HD01")
