"""What the workload plugin tests share: CPU-sized submissions and running items in-process.

Each workload's plugin test trains two kinds of submission on its prepared sample data: the
NAdamW baseline (its own code, with batch sizes a CPU test can afford) and a submission written
as one would write it for upstream AlgoPerf (only `algoperf` imports, v0.6 signatures).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[2]
NADAMW = ROOT / "submissions" / "nadamw"

_SMALL_NADAMW = '''
"""The NAdamW baseline with CPU-sized batches."""
from pytest_algoperf.baselines import baseline_module
_baseline = baseline_module("nadamw")
data_selection, init_optimizer_state = _baseline.data_selection, _baseline.init_optimizer_state
prepare_for_eval, update_params = _baseline.prepare_for_eval, _baseline.update_params

def get_batch_size(workload_name):
    return {batch_size}

def get_eval_batch_size(workload_name):
    return {eval_batch_size}
'''

_UPSTREAM_SUBMISSION = '''
"""{optimizer_name} written against upstream AlgoPerf's submission API."""
import torch
from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return {batch_size}

def get_eval_batch_size(workload_name):
    return {eval_batch_size}

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {{"optimizer": {optimizer}}}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
{checks}
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    outputs, new_state = workload.model_fn(current_param_container, batch, model_state, spec.ForwardPassMode.TRAIN,
                                           rng, update_batch_norm=True)
    loss_dict = workload.loss_fn(batch["targets"], outputs{loss_options})
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, current_param_container, new_state

def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
'''

ADAM = "torch.optim.Adam(model_params.parameters(), lr=hyperparameters.learning_rate)"
SGD_MOMENTUM = "torch.optim.SGD(model_params.parameters(), lr=hyperparameters.learning_rate, momentum=0.9)"


def small_nadamw(folder: Path, batch_size: int, eval_batch_size: int) -> Path:
    """The NAdamW baseline at these batch sizes, with its own search space, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "submission.py").write_text(_SMALL_NADAMW.format(batch_size=batch_size, eval_batch_size=eval_batch_size))
    shutil.copy(NADAMW / "tuning_search_space.json", folder / "tuning_search_space.json")
    return folder


def upstream_submission(
    folder: Path,
    batch_size: int,
    eval_batch_size: int,
    checks: List[str],
    optimizer: str = ADAM,
    loss_options: str = "",
    learning_rate: float = 0.001,
) -> Path:
    """An upstream-API submission in `folder`; `checks` are update_params' first lines (assertions on
    what the workload hands it), `loss_options` extra keyword arguments of loss_fn."""
    folder.mkdir(parents=True, exist_ok=True)
    source = _UPSTREAM_SUBMISSION.format(
        optimizer_name="SGD with momentum" if optimizer == SGD_MOMENTUM else "Adam",
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        optimizer=optimizer,
        checks="\n".join(f"    {line}" for line in checks) or "    pass",
        loss_options=loss_options,
    )
    (folder / "submission.py").write_text(source)
    (folder / "tuning_search_space.json").write_text(f'{{"learning_rate": {{"feasible_points": [{learning_rate}]}}}}')
    return folder


def run_items(pytester, submission: Path, data_dir: Path, results_dir: Path, selection: str, steps: int = 2, *options: str):
    """One study, one trial of every selected item, `steps` steps each (an eval after the first and the last);
    `options` are further plugin options (e.g. the benchmark version)."""
    return pytester.runpytest(
        f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}", f"--algoperf-results-dir={results_dir}",
        f"--algoperf-max-steps={steps}", "--algoperf-studies=1", "--algoperf-trials=1", "-k", selection, "-rs",
        "-p", "no:cacheprovider", *options,
    )


def eval_rows(results_dir: Path, workload: str) -> List[dict]:
    """The rows of the workload's (only) trial's eval_measurements.csv."""
    (path,) = results_dir.rglob(f"{workload}_pytorch/trial_1/eval_measurements.csv")
    with open(path) as handle:
        return list(csv.DictReader(handle))
