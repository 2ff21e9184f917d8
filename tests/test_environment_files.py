"""Every conda environment file, checked statically against pyproject.toml.

Conda cannot run here, so `conda env create` is never tried. What can drift is
checked instead: each file parses, uses the right channels, and lists every
runtime dependency with exactly pyproject.toml's bounds; the package itself
comes from pip at this version; crypt4gh comes from pip (the conda channels
only have python-crypt4gh 1.7, below our lower bound).
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PACKAGE = PYPROJECT["name"]
TOP_LEVEL = REPO / "environment.yml"
WRAPPER_ENVS = sorted((REPO / "workflow_examples/wrappers").rglob("environment.yaml"))
MODULE_ENVS = sorted((REPO / "workflow_examples/nextflow").rglob("environment.yml"))
ALL_ENVS = [TOP_LEVEL, *WRAPPER_ENVS, *MODULE_ENVS]
# conda: "name >=1,<2", "name=1.2" or "channel::name>=1"; no build strings here
CONDA_SPEC = re.compile(
    r"^(?:[\w-]+::)?(?P<name>[A-Za-z0-9_.-]+)\s*(?P<spec>[<>=!~].*)?$"
)


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def _load(path: Path) -> dict[str, object]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def _dependencies(
    path: Path,
) -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    """(conda, pip) package name -> version bounds; '=' pins become '=='."""
    conda: dict[str, SpecifierSet] = {}
    pip: dict[str, SpecifierSet] = {}
    for entry in _load(path)["dependencies"]:  # type: ignore[union-attr]
        if isinstance(entry, dict):
            for line in entry["pip"]:
                req = Requirement(line)
                pip[req.name.lower()] = req.specifier
            continue
        match = CONDA_SPEC.match(entry.strip())
        assert match, f"{path}: cannot parse the conda spec {entry!r}"
        spec = re.sub(
            r"(?<![<>=!~])=(?!=)", "==", (match["spec"] or "").replace(" ", "")
        )
        conda[match["name"].lower()] = SpecifierSet(spec)
    return conda, pip


def _runtime_bounds() -> dict[str, SpecifierSet]:
    bounds = {}
    for line in PYPROJECT["dependencies"]:
        req = Requirement(line)
        bounds[req.name.lower()] = req.specifier
    return bounds


@pytest.mark.parametrize("path", ALL_ENVS, ids=_ids(ALL_ENVS))
def test_env_file_lists_every_runtime_dependency_with_pyproject_bounds(
    path: Path,
) -> None:
    conda, pip = _dependencies(path)
    listed = {**conda, **pip}

    for name, bounds in _runtime_bounds().items():
        assert name in listed, f"{path.name} lacks {name}"
        assert listed[name] == bounds, f"{path.name}: {name} {listed[name]} != {bounds}"
    assert not set(conda) & set(pip), "a package listed by both conda and pip"
    assert conda["python"] == SpecifierSet(PYPROJECT["requires-python"])
    assert "pip" in conda


@pytest.mark.parametrize(
    "path",
    ALL_ENVS,
    ids=_ids(ALL_ENVS),
)
def test_env_file_installs_this_package_version_and_crypt4gh_by_pip(
    path: Path,
) -> None:
    _conda, pip = _dependencies(path)

    assert pip.get(PACKAGE) == SpecifierSet(f"=={PYPROJECT['version']}")
    assert "crypt4gh" in pip


def test_top_level_env_has_snakemake_with_the_test_extra_bounds() -> None:
    conda, _pip = _dependencies(TOP_LEVEL)
    extra = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["test"]]
    (snakemake,) = [r for r in extra if r.name == "snakemake"]

    assert conda["snakemake-minimal"] == snakemake.specifier


@pytest.mark.parametrize("path", WRAPPER_ENVS, ids=_ids(WRAPPER_ENVS))
def test_wrapper_env_uses_the_snakemake_wrappers_channels(path: Path) -> None:
    assert _load(path)["channels"] == ["conda-forge", "bioconda", "nodefaults"]


@pytest.mark.parametrize("path", MODULE_ENVS, ids=_ids(MODULE_ENVS))
def test_module_env_follows_the_nf_core_schema(path: Path) -> None:
    data = _load(path)

    assert set(data) == {"channels", "dependencies"}  # nf-core: no name
    assert data["channels"] == ["conda-forge", "bioconda"]


def test_every_wrapper_and_module_has_an_env_file() -> None:
    wrappers = sorted(
        p.parent for p in (REPO / "workflow_examples").rglob("wrapper.py")
    )
    modules = sorted(p.parent for p in (REPO / "workflow_examples").rglob("main.nf"))
    modules = [m for m in modules if m.parent.name == "ghga"]

    assert [w.name for w in wrappers] == ["decrypt", "download", "encrypt", "upload"]
    assert [p.parent for p in WRAPPER_ENVS] == wrappers
    assert [m.name for m in modules] == ["download", "upload"]
    assert [p.parent for p in MODULE_ENVS] == modules
