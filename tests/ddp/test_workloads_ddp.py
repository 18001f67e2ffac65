"""Every workload under DDP: torchrun with two CPU processes over gloo, against one process on the same data.

One torchrun launch and one single-process run of `driver.py` serve the whole
module (see its docstring for what each rank records). Rank r must train on
block r of the single process's global batch and evaluate block r of each
padded eval batch (upstream's rank-0 pipeline + broadcast, reference §3.7);
OGBG's ranks each get the per-device dynamic batch of upstream's rule; eval
metrics, summed per rank and all-reduced, must equal the single process's.

Criteo runs as `criteo1tb_test`, the registered development variant with a
65,536-row embedding table; it shares every line of the DDP path with the full
workload, whose 4,194,304-row table (537M parameters, about 8.6 GB per rank
with gradients and NAdamW's two moments) would not fit two ranks in this
machine's memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
import pytest

from workloads.fastmri.sample_data import scan_available
from workloads.imagenet.sample_data import sample_images_available
from workloads.librispeech.sample_data import speech_available
from scoring.versions import DEFAULT_VERSION
from workloads.registry import benchmark_version_for, get_workload
from workloads.smoke_data import prepare_smoke_data

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("driver.py")
# fastMRI's tiny data is simulated k-space of a real scan from Debian's mricron-data (installed by setup).
WORKLOADS = ("mnist", "ogbg", "wmt", "criteo1tb_test", "cifar") + (("fastmri",) if scan_available() else ())
WORKLOADS += ("imagenet_resnet", "imagenet_vit") if sample_images_available() else ()
WORKLOADS += ("librispeech_conformer", "librispeech_deepspeech") if speech_available() else ()
WORKLOADS += ("finewebedu_lm",)  # Debian's licence texts (base-files, on every Debian system)
# Where rank r's rows sit in a global batch: a block (rank 0 the first half, as upstream's rank 0
# scatters them), or every N-th row from row r (DistributedSampler and upstream's eval sampler).
INTERLEAVED_ROWS = ("imagenet_resnet", "imagenet_vit", "cifar", "librispeech_conformer", "librispeech_deepspeech")
NUM_RANKS = 2
TIMEOUT_S = 900  # a guard against hangs: both runs take about 3 minutes on two idle cores
REL_TOLERANCE = 1e-5  # summation order differs between one process and two ranks
# After training, LibriSpeech's CTC losses (thousands, on untrained 20 s utterances) sit on a steep
# landscape that grows the runs' rounding differences with the step: measured on the Conformer,
# 7e-6 after one SGD step at 1e-6 and 2.5e-4 after NAdamW's first full step (its Adam-style update
# moves every weight by about the learning rate, whatever the gradient's size); before training they
# agree to 1e-7. So they are compared at 1e-3 after training.
TRAINED_REL_TOLERANCE = {"librispeech_conformer": 1e-3, "librispeech_deepspeech": 1e-3}


def _environment() -> Dict[str, str]:
    # CPU and gloo even where GPUs are visible: two ranks must not need two GPUs.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT), CUDA_VISIBLE_DEVICES="")
    for name in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # the single-process run must not think it is a rank
    return env


def _read(out: Path, name: str, world: int) -> List[dict]:
    return [json.loads((out / f"{name}.rank{rank}of{world}.json").read_text()) for rank in range(world)]


# Four of Debian's licence texts, not the smoke gate's two: the split rule gives 6 training windows
# (batches of 4) and 3 validation windows, so the one validation batch of 4 is padded (rank 1 gets a
# real window and the padding row).
LM_DOCUMENTS = ("Apache-2.0", "Artistic", "CC0-1.0", "GPL-1")


def _prepare_lm_sample(root: Path) -> None:
    from workloads.finewebedu_lm import prepare, sample_data

    rows = [row for row in sample_data.documents() if Path(row["file_path"]).name in LM_DOCUMENTS]
    sample_data.write_raw_dir(root / "finewebedu_lm_raw", rows=rows)
    assert prepare.main(["--data-dir", str(root), "--raw-dir", str(root / "finewebedu_lm_raw"), "--subset", "--workers", "1"]) == 0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp-data")
    for name in WORKLOADS:
        if name == "finewebedu_lm":
            _prepare_lm_sample(root)
            continue
        prepare_smoke_data(get_workload(name, benchmark_version_for(name, DEFAULT_VERSION)).dataset_name, root)
    return root


@pytest.fixture(scope="module")
def runs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Dict[str, List[dict]]]:
    """{'single': {name: [rank 0]}, 'ddp': {name: [rank 0, rank 1]}}; both launched at once."""
    outputs = {"single": tmp_path_factory.mktemp("single"), "ddp": tmp_path_factory.mktemp("ddp")}
    arguments = ["--data-dir", str(data_dir)]
    commands = {
        "single": [sys.executable, str(DRIVER), *arguments, "--out", str(outputs["single"]), *WORKLOADS],
        "ddp": [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={NUM_RANKS}",
            str(DRIVER), *arguments, "--out", str(outputs["ddp"]), *WORKLOADS,
        ],
    }
    processes = {
        kind: subprocess.Popen(command, cwd=REPO_ROOT, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for kind, command in commands.items()
    }
    for kind, process in processes.items():
        try:
            output, _ = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for other in processes.values():
                other.kill()
            pytest.fail(f"the {kind} run did not finish within {TIMEOUT_S} s")
        if process.returncode != 0:
            pytest.fail(f"the {kind} run exited with {process.returncode}:\n{output[-6000:]}")
    return {
        "single": {name: _read(outputs["single"], name, 1) for name in (*WORKLOADS, "collectives")},
        "ddp": {name: _read(outputs["ddp"], name, NUM_RANKS) for name in (*WORKLOADS, "collectives")},
    }


def _assert_metrics_close(actual: Dict[str, float], expected: Dict[str, float], rel: float = REL_TOLERANCE) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=rel, abs=1e-9), key


# --- the world -------------------------------------------------------------------------------------


def test_each_rank_sees_a_world_of_two_cpu_processes(runs):
    ranks = runs["ddp"]["mnist"]
    assert [(r["use_ddp"], r["rank"], r["num_devices"]) for r in ranks] == [(True, 0, 2), (True, 1, 2)]
    (single,) = runs["single"]["mnist"]
    assert (single["use_ddp"], single["num_devices"]) == (False, 0)


# --- batches: rank r gets block r ------------------------------------------------------------------


@pytest.mark.parametrize("name", [name for name in WORKLOADS if name != "ogbg"])
def test_each_rank_gets_its_block_of_every_global_batch(runs, name):
    (single,) = runs["single"][name]
    ranks = runs["ddp"][name]
    for split in ("train_batches", "validation_batches"):
        assert len(ranks[0][split]) == len(ranks[1][split]) == len(single[split]) > 0
        for step, whole in enumerate(single[split]):
            per_device = len(whole) // NUM_RANKS
            for rank, record in enumerate(ranks):
                rows = whole[rank::NUM_RANKS] if name in INTERLEAVED_ROWS else whole[rank * per_device : (rank + 1) * per_device]
                assert record[split][step] == rows, (split, step, rank)


def test_the_short_last_eval_batch_is_padded_before_it_is_split(runs):
    # MNIST: 64 validation digits in batches of 48. The second batch holds 16 digits and 32 padding
    # rows: rank 0 gets the 16 digits and 8 padding rows, rank 1 only padding (identical rows).
    rank0, rank1 = (record["validation_batches"][1] for record in runs["ddp"]["mnist"])
    assert len(rank0) == len(rank1) == 24
    assert len(set(rank0[16:]) | set(rank1)) == 1 and rank0[16] not in rank0[:16]


# --- eval metrics: summed per rank, all-reduced ----------------------------------------------------


@pytest.mark.parametrize("name", [name for name in WORKLOADS if name != "ogbg"])
def test_metrics_after_training_equal_a_single_process(runs, name):
    (single,) = runs["single"][name]
    ranks = runs["ddp"][name]
    assert ranks[0]["trained"] == ranks[1]["trained"]  # every rank reports the all-reduced numbers
    _assert_metrics_close(ranks[0]["initial"], single["initial"])
    _assert_metrics_close(ranks[0]["trained"], single["trained"], TRAINED_REL_TOLERANCE.get(name, REL_TOLERANCE))


@pytest.mark.parametrize("name, metric", [("mnist", "train/loss"), ("imagenet_resnet", "train/loss"),
                                          ("librispeech_conformer", "train/ctc_loss"), ("librispeech_deepspeech", "train/ctc_loss"),
                                          ("finewebedu_lm", "validation/loss")])
def test_training_moves_the_metrics_far_beyond_the_tolerance(runs, name, metric):
    if name not in runs["single"]:
        pytest.skip(f"{name}'s sample data is not installed")
    (single,) = runs["single"][name]
    before, after = single["initial"][metric], single["trained"][metric]
    assert abs(after - before) > 100 * REL_TOLERANCE * before  # so equal metrics mean equal training


# --- OGBG: per-device dynamic batches --------------------------------------------------------------

AVG_NODES, AVG_EDGES = 26, 56  # upstream's per-device budget constants


def _groups(order: Iterator[int], n_node: np.ndarray, n_edge: np.ndarray, per_device: int) -> Iterator[List[int]]:
    """jraph.dynamically_batch's grouping for one device: molecules in order while they fit the budget
    (26·b + 1 nodes, 56·b edges, b + 1 graphs, one node and one graph kept for padding)."""
    max_nodes, max_edges, max_graphs = AVG_NODES * per_device + 1, AVG_EDGES * per_device, per_device + 1
    group: List[int] = []
    nodes = edges = 0
    for molecule in order:
        if group and (len(group) == max_graphs - 1 or nodes + n_node[molecule] > max_nodes - 1 or edges + n_edge[molecule] > max_edges):
            yield group
            group, nodes, edges = [], 0, 0
        group.append(molecule)
        nodes += int(n_node[molecule])
        edges += int(n_edge[molecule])
    if group:
        yield group


def _atom_digest(graphs, molecule: int) -> str:
    start, stop = graphs.node_offsets[molecule], graphs.node_offsets[molecule + 1]
    return hashlib.sha1(np.ascontiguousarray(graphs.node_feat[start:stop], dtype=np.float32).tobytes()).hexdigest()[:16]


def _label_digest(graphs, molecule: int) -> str:
    labels = graphs.labels[molecule]
    sha = hashlib.sha1((labels == 1).astype(np.float32).tobytes())
    sha.update((labels >= 0).tobytes())
    return sha.hexdigest()[:16]


def _assert_rank_batch_holds(record: dict, graphs, molecules: List[int]) -> None:
    count = len(molecules)
    assert record["atoms"][:count] == [_atom_digest(graphs, m) for m in molecules]
    assert record["labels"][:count] == [_label_digest(graphs, m) for m in molecules]
    assert record["n_node"][:count] == [int(graphs.n_node[m]) for m in molecules]
    assert len(set(record["labels"][count:])) <= 1  # the rest is padding: no labels at all


def test_ogbg_ranks_get_upstreams_per_device_dynamic_batches(runs, data_dir):
    from workloads.ogbg import input_pipeline
    from workloads.ogbg.prepared_data import load_split

    workload = get_workload("ogbg")
    ranks = runs["ddp"]["ogbg"]
    per_device_train, per_device_eval = 8 // NUM_RANKS, 16 // NUM_RANKS  # the driver's global batches

    train = load_split(workload.dataset_dir(str(data_dir)), "train")
    order = (m for epoch in input_pipeline.train_epochs(train.num_graphs, np.array(ranks[0]["data_rng"])) for m in epoch)
    groups = _groups(order, train.n_node, train.n_edge, per_device_train)
    for step in range(len(ranks[0]["train_batches"])):
        for rank in range(NUM_RANKS):  # global batch k = per-device groups NUM_RANKS·k ... NUM_RANKS·k + N - 1
            record = ranks[rank]["train_batches"][step]
            _assert_rank_batch_holds(record, train, next(groups))
            assert sum(record["n_node"]) == AVG_NODES * per_device_train + 1  # training batches fill the budget
            assert len(record["n_node"]) == per_device_train + 1

    validation = load_split(workload.dataset_dir(str(data_dir)), "validation")
    groups = list(_groups(iter(range(validation.num_graphs)), validation.n_node, validation.n_edge, per_device_eval))
    assert len(ranks[0]["validation_batches"]) == len(ranks[1]["validation_batches"]) == -(-len(groups) // NUM_RANKS)
    for index, group in enumerate(groups):
        _assert_rank_batch_holds(ranks[index % NUM_RANKS]["validation_batches"][index // NUM_RANKS], validation, group)


def test_ogbg_eval_over_two_ranks_equals_one_process(runs):
    # The same model evaluated on the same molecules: batching across ranks must not change the metrics
    # (accuracy and loss all-reduced, mean average precision over the gathered predictions).
    (single,) = runs["single"]["ogbg"]
    ranks = runs["ddp"]["ogbg"]
    _assert_metrics_close(ranks[0]["initial"], single["initial"])
    assert ranks[0]["trained"] == ranks[1]["trained"]
    assert all(np.isfinite(value) for value in ranks[0]["trained"].values())


# --- model state ----------------------------------------------------------------------------------


def test_sync_model_state_for_eval_averages_per_rank_statistics(runs):
    ranks = runs["ddp"]["collectives"]
    assert [r["before"] for r in ranks] == [[1.0] * 3, [2.0] * 3]
    assert [r["after"] for r in ranks] == [[1.5] * 3, [1.5] * 3]
    assert [r["steps"] for r in ranks] == [7, 7]  # integer state is left as it is
    (single,) = runs["single"]["collectives"]
    assert single["after"] == single["before"]  # one process: nothing to average


def test_ranks_that_disagree_on_the_data_seed_all_fail_with_both_seeds_named(runs):
    messages = [r["disagreement"] for r in runs["ddp"]["collectives"]]
    assert messages[0] == messages[1]
    assert "the ranks disagree on the data seed (rank 0: [0, 12], rank 1: [1, 12])" in messages[0]
    assert runs["single"]["collectives"][0]["disagreement"] is None
