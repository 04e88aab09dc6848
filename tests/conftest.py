"""Shared pytest settings: where the built binaries and the repo's fixtures are."""
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("LORAX_BUILD_DIR", REPO / "build"))
SHARED = pathlib.Path(os.environ.get("LORAX_SHARED_DIR", REPO.parent / "shared"))
# helm and kubectl: scripts/install-kube-tools puts them beside the venv's python (not whatever is on PATH).
VENV_BIN = pathlib.Path(sys.prefix) / "bin"


def _kube_tool(name):
    path = VENV_BIN / name
    assert os.access(path, os.X_OK), f"{path} missing: run scripts/install-kube-tools (scripts/setup does)"
    return path


@pytest.fixture(scope="session")
def engine_bin():
    path = BUILD / "bin" / "lorax-engine"
    assert path.exists(), f"{path} not built"
    return path


@pytest.fixture(scope="session")
def operator_bin():
    path = BUILD / "bin" / "lorax-operator"
    assert path.exists(), f"{path} not built"
    return path


@pytest.fixture(scope="session")
def kubectl_bin():
    return _kube_tool("kubectl")


@pytest.fixture(scope="session")
def helm_bin():
    return _kube_tool("helm")
