"""Upstream's device settings (pytorch_init) per benchmark version."""

from __future__ import annotations

import pytest
import torch

from pytest_algoperf import device_settings
from scoring.versions import load_version


@pytest.fixture
def restore_backends():
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    yield
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


@pytest.mark.parametrize("version", ["v0.5", "v0.6"])
def test_benchmark_settings_turn_on_cudnn_autotuning_and_keep_fp32_matmuls(restore_backends, version):
    torch.backends.cudnn.benchmark = False
    device_settings.apply_benchmark_settings(version)
    assert torch.backends.cudnn.benchmark is True
    assert load_version(version).runner["pytorch_tf32_matmul"] is False
    assert torch.backends.cuda.matmul.allow_tf32 is False and torch.get_float32_matmul_precision() == "highest"


def test_a_version_that_sets_tf32_gets_it(restore_backends, monkeypatch):
    real = load_version("v0.6")
    tf32_version = type(real)(**{**real.__dict__, "runner": {**real.runner, "pytorch_tf32_matmul": True}})
    monkeypatch.setattr("scoring.versions.load_version", lambda name: tf32_version)
    device_settings.apply_benchmark_settings("v0.6")
    assert torch.backends.cuda.matmul.allow_tf32 is True and torch.get_float32_matmul_precision() == "high"

