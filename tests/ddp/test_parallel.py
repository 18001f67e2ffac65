"""workloads.parallel and pytorch_setup in one process: the world from torchrun's variables, batch blocks, wrapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_algoperf.api.pytorch_utils import pytorch_setup
from workloads import parallel


def test_under_torchrun_the_world_size_is_the_device_count(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    use_ddp, rank, device, n_gpus = pytorch_setup()
    assert (use_ddp, rank, n_gpus) == (True, 1, 2)
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_without_torchrun_the_visible_gpus_count(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")  # ignored outside DDP, as upstream
    assert pytorch_setup()[0] is False
    assert pytorch_setup()[3] == torch.cuda.device_count()


def test_rank_r_gets_block_r_of_a_global_batch():
    rows = np.arange(12)
    blocks = [parallel.World(True, rank, torch.device("cpu"), 3).local_rows(rows) for rank in range(3)]
    assert [block.tolist() for block in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    single = parallel.World(False, 0, torch.device("cpu"), 0)
    assert single.local_rows(rows).tolist() == rows.tolist()
    assert (single.num_shards, single.shard_index) == (1, None)


def test_a_batch_that_does_not_divide_names_the_fix():
    with pytest.raises(ValueError, match="does not divide evenly across 4 devices; use a batch size that is a multiple of 4"):
        parallel.per_device_batch_size(10, 4)
    assert parallel.per_device_batch_size(12, 4) == 3
    assert parallel.per_device_batch_size(5, 0) == 5  # a CPU-only process is one device


def test_one_process_keeps_the_bare_module_and_unwrap_sees_through_wrappers():
    model = torch.nn.Linear(2, 2)
    world = parallel.World(False, 0, torch.device("cpu"), 0)
    assert parallel.wrap_model(model, world) is model
    wrapped = torch.nn.DataParallel(model)  # what several GPUs without torchrun get
    assert parallel.unwrap_model(wrapped) is model
    compiled_like = type("Compiled", (), {"_orig_mod": wrapped})()
    assert parallel.unwrap_model(compiled_like) is model


def test_sums_are_left_alone_outside_ddp_and_refused_without_a_process_group():
    single = parallel.World(False, 0, torch.device("cpu"), 0)
    assert parallel.all_reduce_sum(torch.tensor([1.0, 2.0]), single).tolist() == [1.0, 2.0]
    assert parallel.all_gather_objects("mine", single) == ["mine"]
    orphan = parallel.World(True, 0, torch.device("cpu"), 2)  # LOCAL_RANK set, pytorch_init never called
    with pytest.raises(RuntimeError, match="no process group exists; call pytorch_init"):
        parallel.all_reduce_sum(torch.zeros(1), orphan)
