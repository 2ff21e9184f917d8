"""Error translation: engine errors become WorkflowErrors in the plugin's words."""

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_ghga.errors import AuthError
from snakemake_storage_plugin_ghga.messages import plugin_wording, workflow_errors


@pytest.mark.parametrize(
    ("engine", "plugin"),
    [
        ("use (--my-private-key)", "use (--storage-ghga-my-private-key)"),
        ("--my-public-key and --part-size 64", "--storage-ghga-my-public-key and "
         "--storage-ghga-part-size 64"),
        ("Check --ghga-public-key / GHGA_PUBLIC_KEY",
         "Check --storage-ghga-ghga-public-key / SNAKEMAKE_STORAGE_GHGA_GHGA_PUBLIC_KEY"),
        ("--storage-ghga-tmp-dir stays", "--storage-ghga-tmp-dir stays"),
        ("SNAKEMAKE_STORAGE_GHGA_GHGA_PUBLIC_KEY stays",
         "SNAKEMAKE_STORAGE_GHGA_GHGA_PUBLIC_KEY stays"),
        ("--my-private-keys is not an option", "--my-private-keys is not an option"),
    ],
)  # fmt: skip
def test_plugin_wording_renames_cli_options(engine: str, plugin: str) -> None:
    assert plugin_wording(engine) == plugin


def test_workflow_errors_keeps_message_hint_and_cause() -> None:
    error = AuthError("token refused (401)", "Pass a new token (--my-public-key)")

    with pytest.raises(WorkflowError) as info, workflow_errors():
        raise error

    assert str(info.value) == (
        "token refused (401). Pass a new token (--storage-ghga-my-public-key)"
    )
    assert info.value.__cause__ is error


def test_workflow_errors_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), workflow_errors():
        raise KeyError("x")
