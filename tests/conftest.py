"""Shared pytest settings: where the built binaries and the repo's fixtures are."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("LORAX_BUILD_DIR", REPO / "build"))
SHARED = pathlib.Path(os.environ.get("LORAX_SHARED_DIR", REPO.parent / "shared"))


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
