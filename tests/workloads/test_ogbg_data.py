"""OGBG data: the official raw release (hand-written gzipped CSVs) -> preparation -> dynamic batches."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from workloads.data_manifest import write_manifest
from workloads.ogbg import input_pipeline, prepare
from workloads.ogbg.batching import Budget, GraphTooLargeError, assemble, count_that_fit
from workloads.ogbg.prepared_data import load_split
from workloads.ogbg.raw_format import write_release
from workloads.ogbg.synthetic import random_molecules
from workloads.registry import get_workload

# --- a release written by hand -----------------------------------------------------------------

# Four molecules: 2 atoms/1 bond, 3 atoms/2 bonds, 1 atom/no bond, 2 atoms/1 bond.
ATOMS = [[5, 0, 1, 5, 3, 0, 2, 0, 0], [7, 0, 1, 5, 2, 0, 2, 0, 0],
         [5, 0, 2, 5, 1, 0, 3, 1, 1], [6, 1, 2, 5, 0, 0, 3, 1, 1], [7, 0, 1, 5, 1, 0, 3, 1, 1],
         [16, 0, 0, 5, 2, 0, 0, 0, 0],
         [5, 0, 1, 5, 3, 0, 2, 0, 0], [8, 0, 1, 4, 0, 0, 2, 0, 0]]
BONDS = [[0, 1], [0, 1], [1, 2], [0, 1]]
BOND_FEATURES = [[0, 0, 0], [1, 0, 1], [3, 0, 1], [1, 2, 0]]


def _labels(*known):
    """A label line: 128 fields, the given (task, value) pairs set, the rest empty (not measured)."""
    fields = [""] * 128
    for task, value in known:
        fields[task] = value
    return ",".join(fields)


LABEL_LINES = [_labels((0, "1"), (1, "0")), _labels((0, "0"), (127, "1.0")), _labels(), _labels((1, "1"))]


def _write_gz(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def _csv(rows):
    return [",".join(str(value) for value in row) for row in rows]


def write_hand_release(root: Path) -> Path:
    _write_gz(root / "raw" / "num-node-list.csv.gz", ["2", "3", "1", "2"])
    _write_gz(root / "raw" / "num-edge-list.csv.gz", ["1", "2", "0", "1"])
    _write_gz(root / "raw" / "node-feat.csv.gz", _csv(ATOMS))
    _write_gz(root / "raw" / "edge.csv.gz", _csv(BONDS))
    _write_gz(root / "raw" / "edge-feat.csv.gz", _csv(BOND_FEATURES))
    _write_gz(root / "raw" / "graph-label.csv.gz", LABEL_LINES)
    _write_gz(root / "split" / "scaffold" / "train.csv.gz", ["2", "0"])
    _write_gz(root / "split" / "scaffold" / "valid.csv.gz", ["1"])
    _write_gz(root / "split" / "scaffold" / "test.csv.gz", ["3"])
    return root


def test_preparation_turns_the_release_into_directed_arrays(tmp_path):
    release = write_hand_release(tmp_path / "pcba")
    assert prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(release)]) == 0
    dataset = tmp_path / "data" / "ogbg"
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["subset"] is True
    assert manifest["counts"] == {"train": 2, "validation": 1, "test": 1, "eval_train": 2}

    validation = load_split(dataset, "validation")
    assert validation.graph_index.tolist() == [1]
    np.testing.assert_array_equal(validation.node_feat, ATOMS[2:5])
    assert validation.node_feat.dtype == np.uint8
    # Bonds as listed, then reversed: 0->1, 1->2, 1->0, 2->1 (atom indices local to the molecule).
    assert validation.senders.tolist() == [0, 1, 1, 2] and validation.receivers.tolist() == [1, 2, 0, 1]
    np.testing.assert_array_equal(validation.edge_feat, [BOND_FEATURES[1], BOND_FEATURES[2]] * 2)
    assert validation.node_offsets.tolist() == [0, 3] and validation.edge_offsets.tolist() == [0, 4]
    expected = np.full(128, -1)
    expected[0], expected[127] = 0, 1
    np.testing.assert_array_equal(validation.labels[0], expected)

    train = load_split(dataset, "train")
    assert sorted(train.graph_index.tolist()) == [0, 2]
    single_atom = train.graph_index.tolist().index(2)
    assert train.n_node[single_atom] == 1 and train.n_edge[single_atom] == 0
    assert (train.labels[single_atom] == -1).all()
    assert get_workload("ogbg").data_status(str(tmp_path / "data")).ready


def test_the_zip_itself_and_a_download_give_the_same_data(tmp_path):
    release = write_hand_release(tmp_path / "unzipped" / "pcba")
    archive = tmp_path / "pcba.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(release.rglob("*.csv.gz")):
            bundle.write(path, path.relative_to(release.parent).as_posix())
    prepare.main(["--data-dir", str(tmp_path / "from_dir"), "--raw-dir", str(tmp_path / "unzipped")])
    prepare.main(["--data-dir", str(tmp_path / "from_zip"), "--raw-dir", str(archive)])
    prepare.main(["--data-dir", str(tmp_path / "from_raw"), "--raw-dir", str(release / "raw")])
    prepare.main(["--data-dir", str(tmp_path / "fetched"), "--download", "--url", archive.as_uri()])
    assert (tmp_path / "fetched" / "ogbg_raw" / "pcba.zip").is_file()
    reference = json.loads((tmp_path / "from_dir" / "ogbg" / "manifest.json").read_text())["files"]
    for other in ("from_zip", "fetched", "from_raw"):
        assert json.loads((tmp_path / other / "ogbg" / "manifest.json").read_text())["files"] == reference


def _damage(root: Path, relative: str, lines) -> None:
    if lines is None:
        (root / relative).unlink()
    else:
        _write_gz(root / relative, lines)


@pytest.mark.parametrize(
    "relative, lines, message",
    [
        ("raw/edge-feat.csv.gz", None, "edge-feat.csv.gz is missing; the release is incomplete"),
        ("raw/node-feat.csv.gz", _csv(ATOMS[:-1]), "node-feat.csv.gz has 7 atoms, the node counts add up to 8"),
        ("raw/edge.csv.gz", _csv([[0, 1], [0, 1], [1, 3], [0, 1]]), "bond 2 of graph 1 names an atom outside the molecule"),
        ("raw/graph-label.csv.gz", LABEL_LINES[:3] + [_labels((1, "2"))], "labels other than 0, 1 or empty"),
        ("split/scaffold/test.csv.gz", ["1"], "test.csv.gz repeats a graph, or shares one with another split"),
        ("raw/node-feat.csv.gz", _csv([row[:8] for row in ATOMS]), "node-feat.csv.gz has 8 columns per line, expected 9"),
    ],
)
def test_a_damaged_release_is_named_and_nothing_is_written(tmp_path, relative, lines, message):
    release = write_hand_release(tmp_path / "pcba")
    _damage(release, relative, lines)
    with pytest.raises(SystemExit, match="ogbg-molpcba release unusable: .*" + message.replace("(", r"\(")):
        prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(release)])
    assert not (tmp_path / "data" / "ogbg").exists()


def test_a_truncated_download_is_named(tmp_path):
    release = write_hand_release(tmp_path / "pcba")
    data = (release / "raw" / "edge.csv.gz").read_bytes()
    (release / "raw" / "edge.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit, match="edge.csv.gz is not a readable gzipped CSV"):
        prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(release)])
    with pytest.raises(SystemExit, match="no ogbg-molpcba release at"):
        prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(tmp_path / "nowhere")])


def test_data_status_reports_missing_partial_and_miscounted_data(tmp_path):
    workload = get_workload("ogbg_model_size")
    status = workload.data_status(str(tmp_path))
    assert status.missing and f"python -m workloads.ogbg.prepare --data-dir {tmp_path} --download" in status.reason
    prepare.main(["--data-dir", str(tmp_path), "--raw-dir", str(write_hand_release(tmp_path / "pcba"))])
    assert workload.data_status(str(tmp_path)).ready
    with open(tmp_path / "ogbg" / "test" / "labels.npy", "ab") as handle:
        handle.write(b"extra")
    status = workload.data_status(str(tmp_path))
    assert not status.ready and not status.missing and "labels.npy has" in status.reason
    (tmp_path / "ogbg" / "manifest.json").unlink()
    assert "preparation never finished" in workload.data_status(str(tmp_path)).reason
    # A dir claiming to be the full release must hold the reference's split sizes.
    write_manifest(tmp_path / "ogbg", [], {"train": 2, "validation": 1, "test": 1}, source="test", subset=False)
    assert "has 2 examples in 'train', expected 350343" in workload.data_status(str(tmp_path)).reason


# --- batching ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """60 random molecules written in the release layout and prepared by the real command."""
    root = tmp_path_factory.mktemp("ogbg")
    write_release(root / "pcba", random_molecules(60, seed=1, split_fractions=(0.6, 0.2, 0.2)))
    prepare.main(["--data-dir", str(root / "data"), "--raw-dir", str(root / "pcba")])
    return root / "data" / "ogbg"


def _jraph_like_groups(n_node, n_edge, budget):
    """jraph.dynamically_batch's rule, one graph at a time."""
    groups, current, nodes, edges = [], [], 0, 0
    for index, (a, e) in enumerate(zip(n_node, n_edge)):
        if current and (len(current) + 1 > budget.max_graphs - 1 or nodes + a > budget.max_nodes - 1 or edges + e > budget.max_edges):
            groups.append(current)
            current, nodes, edges = [], 0, 0
        current.append(index)
        nodes, edges = nodes + a, edges + e
    return groups + [current]


def test_budgets_are_26b_plus_1_nodes_56b_edges_b_plus_1_graphs():
    assert Budget.for_batch_size(512) == Budget(max_nodes=13_313, max_edges=28_672, max_graphs=513)


def test_train_batches_fill_the_budget_exactly_and_pad_with_one_graph(prepared):
    graphs = load_split(prepared, "train")
    batch = next(input_pipeline.train_batches(graphs, 8, prng.PRNGKey(0)))
    inputs = batch["inputs"]
    assert inputs.nodes.shape == (209, 9) and inputs.edges.shape == (448, 3) and inputs.n_node.shape == (9,)
    assert batch["targets"].shape == batch["weights"].shape == (9, 128)
    assert inputs.n_node.sum() == 209 and inputs.n_edge.sum() == 448
    real = int(np.flatnonzero(inputs.n_node)[-1])  # the padding graph: the last one with nodes
    assert inputs.n_node[real] >= 1 and (inputs.n_node[real + 1 :] == 0).all() and (inputs.n_edge[real + 1 :] == 0).all()
    first_padding_node = inputs.n_node[:real].sum()
    padding_edges = slice(inputs.n_edge[:real].sum(), None)
    assert (inputs.senders[padding_edges] == first_padding_node).all() and (inputs.receivers[padding_edges] == first_padding_node).all()
    assert not batch["weights"][real:].any() and not batch["targets"][real:].any()
    # Every real edge stays inside its own molecule.
    node_graph = np.repeat(np.arange(9), inputs.n_node)
    edge_graph = np.repeat(np.arange(9), inputs.n_edge)
    assert (node_graph[inputs.senders] == edge_graph).all() and (node_graph[inputs.receivers] == edge_graph).all()


def test_grouping_follows_jraphs_greedy_rule(prepared):
    graphs = load_split(prepared, "train")
    budget = Budget.for_batch_size(3)
    order = np.arange(graphs.num_graphs)
    expected = _jraph_like_groups(graphs.n_node, graphs.n_edge, budget)
    stream = input_pipeline.IndexStream(iter([order]))
    groups = list(input_pipeline._selections(graphs, stream, budget))
    assert [group.tolist() for group in groups] == expected
    assert count_that_fit(graphs.n_node[:0], graphs.n_edge[:0], budget) == 0


def test_eval_pass_reads_each_molecule_once_with_missing_labels_masked(prepared):
    graphs = load_split(prepared, "validation")
    batches = list(input_pipeline.eval_batches(graphs, np.arange(graphs.num_graphs), 4))
    real_graphs = sum(int(b["inputs"].n_node.shape[0]) - 1 for b in batches)  # one padding graph per batch
    assert real_graphs == graphs.num_graphs == 12
    assert sum(int(b["weights"].sum()) for b in batches) == int((graphs.labels >= 0).sum())
    assert sum(int(b["targets"].sum()) for b in batches) == int((graphs.labels == 1).sum())
    first = batches[0]["inputs"]
    np.testing.assert_array_equal(first.nodes[: graphs.n_node[0]], graphs.node_feat[: graphs.n_node[0]])
    assert first.n_node[-1] == 1 and first.n_edge[-1] == 0  # eval pads with a single one-node graph


def test_shards_join_into_one_graph_or_go_one_per_rank(prepared):
    graphs = load_split(prepared, "validation")
    ids = np.arange(graphs.num_graphs)
    joined = list(input_pipeline.eval_batches(graphs, ids, 8, num_shards=2))
    rank0 = list(input_pipeline.eval_batches(graphs, ids, 8, num_shards=2, shard_index=0))
    rank1 = list(input_pipeline.eval_batches(graphs, ids, 8, num_shards=2, shard_index=1))
    assert len(joined) == len(rank0) == len(rank1)
    for whole, first, second in zip(joined, rank0, rank1):
        np.testing.assert_array_equal(whole["targets"], np.concatenate([first["targets"], second["targets"]]))
        shift = len(first["inputs"].nodes)
        np.testing.assert_array_equal(whole["inputs"].senders, np.concatenate([first["inputs"].senders, second["inputs"].senders + shift]))
    # 12 molecules in per-device batches of at most 4: the last rank may get a padding-only batch.
    assert sum(int(b["weights"].any(axis=1).sum()) for b in joined) <= 12


def test_a_molecule_larger_than_the_batch_is_named(prepared):
    graphs = load_split(prepared, "train")
    big = int(np.argmax(graphs.n_node))
    with pytest.raises(GraphTooLargeError, match=f"{graphs.n_node[big]} atoms .* exceeds the whole batch budget"):
        list(input_pipeline.eval_batches(graphs, np.array([big]), 1))


# --- shuffling -------------------------------------------------------------------------------------


def _shuffle_buffer_one_at_a_time(sequence, size, rng):
    buffer, emitted = list(sequence[:size]), []
    for element in sequence[size:]:
        slot = rng.randint(0, size)
        emitted.append(buffer[slot])
        buffer[slot] = element
    return emitted + [buffer[i] for i in rng.permutation(size)]


@pytest.mark.parametrize("length, size", [(1000, 64), (50, 64), (300, 1), (7, 7)])
def test_shuffle_buffer_matches_the_one_at_a_time_definition(length, size):
    sequence = np.arange(length) * 10
    fast = input_pipeline.shuffle_buffer_order(sequence, size, np.random.RandomState(5))
    slow = _shuffle_buffer_one_at_a_time(sequence, min(size, length), np.random.RandomState(5))
    assert fast.tolist() == slow
    assert sorted(fast.tolist()) == sequence.tolist()
    # Element i enters the buffer with draw i - size + 1, so it cannot leave any earlier.
    assert (np.argsort(fast) >= np.arange(length) - min(size, length) + 1).all()


def test_every_epoch_visits_every_training_molecule_once_in_a_seeded_order():
    epochs = input_pipeline.train_epochs(100_000, prng.PRNGKey(0))
    first, second = next(epochs), next(epochs)
    assert sorted(first.tolist()) == list(range(100_000)) == sorted(second.tolist())
    assert not np.array_equal(first, second)
    assert np.array_equal(first, next(input_pipeline.train_epochs(100_000, prng.PRNGKey(0))))
    assert not np.array_equal(first, next(input_pipeline.train_epochs(100_000, prng.PRNGKey(1))))
    # Shuffled blocks of 2**15 through a 2**15 buffer: the first batch draws from well beyond the first block.
    assert first[:512].max() > 2**15


def test_train_queue_yields_device_tensors_from_a_background_thread(prepared):
    workload = get_workload("ogbg")
    queue = workload._build_input_queue(prng.PRNGKey(0), "train", str(prepared.parent), 8)
    batches = [next(queue) for _ in range(3)]
    inputs = batches[0]["inputs"]
    assert inputs.nodes.dtype == torch.float32 and inputs.senders.dtype == torch.int64 and inputs.globals == {}
    assert batches[0]["weights"].dtype == torch.bool and batches[0]["targets"].dtype == torch.float32
    again = next(workload._build_input_queue(prng.PRNGKey(0), "train", str(prepared.parent), 8))
    torch.testing.assert_close(again["inputs"].nodes, inputs.nodes)
    queue.close()


def test_background_errors_reach_the_consumer():
    def failing():
        yield 1
        raise GraphTooLargeError("too big")

    stream = input_pipeline.prefetch(failing(), 2)
    assert next(stream) == 1
    with pytest.raises(GraphTooLargeError, match="too big"):
        next(stream)


def test_assembling_no_molecule_gives_a_padding_only_batch(prepared):
    graphs = load_split(prepared, "test")
    batch = assemble(graphs, np.zeros(0, dtype=np.int64), Budget.for_batch_size(4), pad_to_budget=False)
    assert batch["inputs"].n_node.tolist() == [1] and batch["inputs"].nodes.shape == (1, 9) and not batch["weights"].any()
