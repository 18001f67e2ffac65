"""Trains and evaluates workloads on prepared data, in one process or one rank of a torchrun launch.

    python tests/ddp/driver.py --data-dir DIR --out OUT mnist ogbg
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp/driver.py --data-dir DIR --out OUT mnist

For each workload, every rank writes OUT/<workload>.rank<r>of<N>.json: the rows
of each training batch and validation batch it received (as digests, so the
test can compare them with the single-process global batches), the eval
metrics of the initial model and after a few NAdamW steps. A final
`collectives` file records what the helpers of workloads/parallel.py made of
values that differ by rank.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pytest_algoperf.api import random_utils as prng  # noqa: E402
from pytest_algoperf.api.halton import hyperparameters_from_dict  # noqa: E402
from pytest_algoperf.api.pytorch_utils import pytorch_init, pytorch_setup  # noqa: E402
from pytest_algoperf.submission_loading import load_submission  # noqa: E402
from workloads import parallel  # noqa: E402
from scoring.versions import DEFAULT_VERSION  # noqa: E402
from workloads.registry import benchmark_version_for, get_workload  # noqa: E402

SUBMISSION_DIR = REPO_ROOT / "submissions" / "nadamw"

# (global train batch, global eval batch, training steps) per workload. The eval batch leaves the
# last validation batch short, so padding reaches the ranks: e.g. MNIST's 64 validation digits in
# batches of 48 give rank 0 of the second batch 16 digits and 8 padding rows, rank 1 only padding.
SETTINGS = {
    "mnist": (8, 48, 3),
    "ogbg": (8, 16, 2),
    "wmt": (4, 8, 2),
    "criteo1tb_test": (16, 32, 2),
    "fastmri": (2, 2, 1),  # one slice per rank: a 320x320 U-Net step costs ~1.6 s per slice on a CPU core
    "imagenet_resnet": (4, 4, 2),  # 4 training photographs: one step an epoch, so the second is reshuffled
    "imagenet_vit": (4, 4, 2),
    "cifar": (4, 4, 2),
    "librispeech_conformer": (2, 2, 2),  # one 20 s utterance per rank; step 0 of the warmup has learning rate ~0
    "librispeech_deepspeech": (2, 2, 2),
    "finewebedu_lm": (2, 4, 2),  # a narrow model (see build); every row is 1,024 tokens x 50,257 logits
}
# Workloads whose models normalise with batch statistics: under DDP each rank normalises its own
# rows (plain BatchNorm, as upstream), so the one-process run emulates the ranks (PerRankBatchNorm).
BATCH_NORM_WORKLOADS = ("imagenet_resnet", "cifar", "librispeech_conformer")
# Of those, the ones whose workload averages the model state across ranks before every eval.
SYNC_BEFORE_EVAL_WORKLOADS = ("librispeech_conformer",)
WARMUP_FACTOR = 1e-3  # MNIST: int(1e-3 * 7813) = 7 warmup steps
# One-step runs whose warmup would otherwise start near zero (LibriSpeech: 76 and 38 warmup steps,
# finewebedu_lm 72):
# a warmup of one step lets that step move the metrics well beyond the test's tolerance.
ONE_STEP_WARMUP = ("librispeech_conformer", "librispeech_deepspeech", "finewebedu_lm")


def digest(*arrays: Any) -> str:
    sha = hashlib.sha1()
    for array in arrays:
        sha.update(np.ascontiguousarray(array.detach().cpu().numpy() if torch.is_tensor(array) else array).tobytes())
    return sha.hexdigest()[:16]


def row_digests(batch: Dict[str, Any]) -> List[str]:
    """One digest per row over every key of the batch (keys in sorted order; a tuple value, as
    LibriSpeech's (audio, paddings), counts as its tensors)."""
    tensors = [t for key in sorted(batch) if batch[key] is not None  # finewebedu_lm trains with weights=None
               for t in (batch[key] if isinstance(batch[key], tuple) else (batch[key],))]
    return [digest(*(tensor[row] for tensor in tensors)) for row in range(len(tensors[0]))]


def graph_records(batch: Dict[str, Any]) -> Dict[str, Any]:
    """Per graph of an OGBG batch: atoms, edges, a digest of its atom features and one of its labels."""
    graph = batch["inputs"]
    n_node = graph.n_node.tolist()
    starts = np.concatenate([[0], np.cumsum(n_node)])
    nodes = graph.nodes.float()
    return {
        "n_node": n_node,
        "n_edge": graph.n_edge.tolist(),
        "atoms": [digest(nodes[starts[g] : starts[g + 1]]) for g in range(len(n_node))],
        "labels": [digest(batch["targets"][g].float(), batch["weights"][g].bool()) for g in range(len(n_node))],
    }


def describe(name: str, batch: Dict[str, Any]) -> Any:
    return graph_records(batch) if name.startswith("ogbg") else row_digests(batch)


class PerRankBatchNorm(torch.nn.Module):
    """One process computing what `ranks` DDP ranks compute with plain (unsynchronised) batch norm.

    In training mode rank r holds rows r, r + N, ... of the global batch (DistributedSampler's
    share) and normalises them with their own batch statistics. Every rank starts a step from
    rank 0's running statistics (DDP broadcasts its buffers before each forward pass) and moves
    them with its own rows; after the step rank 0 keeps its own, which the next step starts from.
    Here the rows are run rank by rank from the same starting statistics and the outputs put back
    in row order; `sync_before_eval` then gives the mean over the ranks of the last step's
    statistics, which is what a workload that averages the model state before eval (the
    Conformer's, upstream's sync_sd) evaluates with. Evaluation runs the model unchanged.
    """

    def __init__(self, model: torch.nn.Module, ranks: int) -> None:
        super().__init__()
        self.model, self.ranks = model, ranks
        self._mean_statistics = None

    def _norms(self) -> List[torch.nn.Module]:
        return [
            m for m in self.model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) or getattr(m, "_is_custom_batch_norm", False)
        ]

    def forward(self, *inputs: torch.Tensor, **options: Any):
        if not self.training:
            return self.model(*inputs, **options)
        norms = self._norms()
        start = [_buffers(m) for m in norms]
        outputs, statistics = [], []
        for rank in range(self.ranks):
            for m, state in zip(norms, start):
                _load_buffers(m, state)
            outputs.append(self.model(*(x[rank :: self.ranks] for x in inputs), **options))
            statistics.append([_buffers(m) for m in norms])
        for m, state in zip(norms, statistics[0]):
            _load_buffers(m, state)  # rank 0's, as DDP's next broadcast leaves every rank
        self._mean_statistics = [
            {k: sum(rank[i][k] for rank in statistics) / self.ranks if torch.is_floating_point(v) else v for k, v in state.items()}
            for i, state in enumerate(statistics[0])
        ]
        return _merged(outputs, len(inputs[0]), self.ranks)

    def sync_before_eval(self) -> None:
        if self._mean_statistics is not None:
            for m, state in zip(self._norms(), self._mean_statistics):
                _load_buffers(m, state)


def _buffers(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Copies of a norm's own buffers (running statistics): its parameters are autograd's, never touched."""
    return {name: value.detach().clone() for name, value in module.named_buffers(recurse=False)}


def _load_buffers(module: torch.nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Puts fresh tensors in place of the buffers (autograd has saved the old ones for the backward pass)."""
    for name, _ in list(module.named_buffers(recurse=False)):
        setattr(module, name, state[name].clone())


def _merged(outputs: List[Any], rows: int, ranks: int):
    """The ranks' outputs (tensors, or tuples of them) put back in global row order."""
    if isinstance(outputs[0], tuple):
        return tuple(_merged([output[i] for output in outputs], rows, ranks) for i in range(len(outputs[0])))
    merged = outputs[0].new_empty((rows, *outputs[0].shape[1:]))
    for rank, output in enumerate(outputs):
        merged[rank::ranks] = output
    return merged


def deterministic_augmentation(name: str, workload) -> None:
    """Random crops, flips and RandAugment draw from each process's global RNG (as upstream), and mixup
    pairs neighbours within each rank's rows, so one process and two ranks would augment differently;
    the check is on sharding and synchronised training, so training input is made deterministic."""
    if name.startswith("imagenet"):
        from workloads.imagenet import transforms

        transforms._train_steps = lambda extra: transforms._eval_steps()
    if name.startswith("imagenet_vit"):
        from workloads.imagenet_vit import workload as vit_workload

        vit_workload.mixup = lambda batch, num_classes: batch
    if name.startswith("librispeech"):
        workload.use_specaug = False  # SpecAugment's masks, too, come from each process's global RNG
    elif name == "cifar":
        from workloads.cifar import input_pipeline

        input_pipeline.train_transform = input_pipeline.eval_transform


def build(name: str, data_dir: str):
    workload = get_workload(name, benchmark_version_for(name, DEFAULT_VERSION))
    workload.use_prepared_data(data_dir)
    deterministic_augmentation(name, workload)
    if name.startswith("wmt"):
        from workloads.wmt.model import TransformerConfig

        prepared = workload.prepared_data(data_dir)
        # A small Transformer: the DDP path is the same, the CPU time is not.
        workload.model_config = TransformerConfig(
            vocab_size=prepared.vocab_size, d_model=32, num_heads=4, d_hidden=64, num_layers=2, max_length=prepared.max_length
        )
    if name == "finewebedu_lm":
        from workloads.finewebedu_lm.model import ModelConfig

        # Narrow and shallow (the full model is 0.5 TFLOP per sequence); windows and vocabulary as the reference.
        workload.model_config = ModelConfig(model_dim=64, num_heads=2, num_layers=2, expanded_model_dim=128, multiple_of=32)
    return workload


def run_workload(name: str, data_dir: str, seed: int, emulated_ranks: int) -> Dict[str, Any]:
    train_batch_size, eval_batch_size, steps = SETTINGS[name]
    submission = load_submission(SUBMISSION_DIR)
    search_space = json.loads((SUBMISSION_DIR / "tuning_search_space.json").read_text())
    # The search space's first point, with a warmup of a few steps instead of hundreds, so that the
    # steps here move the parameters far enough for a wrong gradient to show in the metrics.
    workload = build(name, data_dir)
    warmup_factor = 1.0 / workload.step_hint if name in ONE_STEP_WARMUP else WARMUP_FACTOR
    hyperparameters = hyperparameters_from_dict({**search_space[0], "warmup_factor": warmup_factor})
    data_rng, opt_rng, model_rng, loop_rng = prng.split(prng.PRNGKey(seed), 4)
    eval_rng = prng.split(loop_rng, 2)[1]

    queue = workload._build_input_queue(data_rng, "train", data_dir, train_batch_size)
    model, model_state = workload.init_model_fn(model_rng)
    if name in BATCH_NORM_WORKLOADS and not parallel.current_world().use_ddp:
        model = PerRankBatchNorm(model, emulated_ranks)
    optimizer_state = submission.init_optimizer_state(workload, model, model_state, hyperparameters, opt_rng)
    record: Dict[str, Any] = {"data_rng": [int(value) for value in data_rng]}
    record["initial"] = workload.eval_model(eval_batch_size, model, model_state, eval_rng, data_dir, None, 0)

    record["train_batches"] = []
    for step in range(steps):
        batch = next(queue)
        record["train_batches"].append(describe(name, batch))
        optimizer_state, model, model_state = submission.update_params(
            workload, model, workload.model_params_types, model_state, hyperparameters, batch,
            workload.loss_type, optimizer_state, [], step, prng.fold_in(loop_rng, step),
        )
    if isinstance(model, PerRankBatchNorm) and name in SYNC_BEFORE_EVAL_WORKLOADS:
        model.sync_before_eval()  # what the DDP run's averaging of the model state before eval gives
    record["trained"] = workload.eval_model(eval_batch_size, model, model_state, eval_rng, data_dir, None, steps)

    # One pass over the validation split (not repeated), as the eval above read it.
    num_batches = math.ceil(workload.num_validation_examples / eval_batch_size)
    validation = workload._build_input_queue(eval_rng, "validation", data_dir, eval_batch_size, num_batches=num_batches)
    record["validation_batches"] = [describe(name, batch) for batch in validation]
    return record


def collectives_record() -> Dict[str, Any]:
    """What `sync_model_state_for_eval` makes of batch-norm statistics that differ by rank, and what
    `check_same_seed_on_every_rank` says about seeds that differ by rank."""
    world = parallel.current_world()
    norm = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        norm.running_mean.fill_(float(world.rank + 1))
        norm.num_batches_tracked.fill_(7)
    before = norm.running_mean.tolist()
    parallel.sync_model_state_for_eval(norm, world)
    parallel.check_same_seed_on_every_rank(np.array([11, 12], dtype=np.int32), world=world)
    try:
        parallel.check_same_seed_on_every_rank(np.array([world.rank, 12], dtype=np.int32), world=world)
        disagreement = None
    except RuntimeError as error:
        disagreement = str(error)
    return {"before": before, "after": norm.running_mean.tolist(), "steps": int(norm.num_batches_tracked), "disagreement": disagreement}


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--emulated-ranks", type=int, default=2, help="the DDP run's ranks, for PerRankBatchNorm")
    parser.add_argument("workloads", nargs="+", choices=sorted(SETTINGS))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    use_ddp, rank, _, _ = pytorch_setup()
    pytorch_init(use_ddp, rank)
    world = parallel.current_world()
    suffix = f"rank{rank}of{world.num_shards if use_ddp else 1}"
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.workloads:
        record = {"use_ddp": world.use_ddp, "rank": world.rank, "num_devices": world.num_devices, **run_workload(name, args.data_dir, args.seed, args.emulated_ranks)}
        (args.out / f"{name}.{suffix}.json").write_text(json.dumps(record))
    (args.out / f"collectives.{suffix}.json").write_text(json.dumps(collectives_record()))
    if use_ddp:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # Skip interpreter finalisation. After DDP, torch keeps gloo's worker threads alive past
    # destroy_process_group; one that drops a finished collective's tensor during finalisation
    # asks for the GIL, is ended inside C++ code and aborts the process (std::terminate), now
    # and then, after every record is written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
