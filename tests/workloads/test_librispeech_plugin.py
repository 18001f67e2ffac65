"""The LibriSpeech workloads as plugin items: real speech (asterisk's prompts, pocketsphinx's LibriVox
clips) written as the official OpenSLR archives, prepared by the real command, trained by the NAdamW
baseline and by an upstream-API submission for two steps, with an eval after each, on CPU."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from workloads.librispeech import sample_data

ROOT = Path(__file__).resolve().parents[2]
NADAMW = ROOT / "submissions" / "nadamw"

# The baseline's own code with CPU-sized batches (every utterance is 320,000 samples of audio).
SMALL_NADAMW = '''
"""The NAdamW baseline with CPU-sized batches."""
from pytest_algoperf.baselines import baseline_module
_baseline = baseline_module("nadamw")
data_selection, init_optimizer_state = _baseline.data_selection, _baseline.init_optimizer_state
prepare_for_eval, update_params = _baseline.prepare_for_eval, _baseline.update_params

def get_batch_size(workload_name):
    return 1

def get_eval_batch_size(workload_name):
    return 2
'''

# As one would write it for upstream AlgoPerf: only algoperf imports, v0.6 signatures.
UPSTREAM_SUBMISSION = '''
"""Adam on the CTC loss, written against upstream AlgoPerf's submission API."""
import torch
from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return 1

def get_eval_batch_size(workload_name):
    return 2

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.Adam(model_params.parameters(), lr=hyperparameters.learning_rate)}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.CTC_LOSS
    audio, audio_paddings = batch["inputs"]
    assert audio.shape[1] == 320000 and audio_paddings.shape == audio.shape
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    (logits, logit_paddings), new_state = workload.model_fn(
        current_param_container, batch, model_state, spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True)
    loss_dict = workload.loss_fn(batch["targets"], (logits, logit_paddings))
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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    if not sample_data.speech_available():
        pytest.skip(f"the sample speech comes from Debian packages: {sample_data.INSTALL_HINT}")
    from workloads.smoke_data import prepare_smoke_data

    data_dir = tmp_path_factory.mktemp("data")
    prepare_smoke_data("librispeech", data_dir)  # the real preparation command on the sample archives
    return data_dir


def _run(pytester, submission: Path, data_dir: Path, results_dir: Path, selection: str):
    return pytester.runpytest(
        f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}", f"--algoperf-results-dir={results_dir}",
        "--algoperf-max-steps=2", "--algoperf-studies=1", "--algoperf-trials=1", "-k", selection, "-rs", "-p", "no:cacheprovider",
    )


def _eval_rows(results_dir: Path, workload: str):
    (path,) = results_dir.rglob(f"{workload}_pytorch/trial_1/eval_measurements.csv")
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_missing_data_skips_the_item_with_the_preparation_command(pytester, tmp_path):
    result = _run(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", "librispeech_deepspeech-study0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.librispeech.prepare --data-dir*"])


def test_the_nadamw_baseline_trains_and_evaluates_the_conformer(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("small_nadamw")
    (submission / "submission.py").write_text(SMALL_NADAMW)
    shutil.copy(NADAMW / "tuning_search_space.json", submission / "tuning_search_space.json")
    result = _run(pytester, submission, data_dir, tmp_path, "librispeech_conformer-study0")  # the base workload only
    result.assert_outcomes(passed=1)
    rows = _eval_rows(tmp_path, "librispeech_conformer")
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    final = rows[-1]
    assert [float(final[f"{split}/num_examples"]) for split in ("validation", "test")] == [2, 1]
    for split in ("train", "validation", "test"):
        assert float(final[f"{split}/wer"]) >= 0.0 and float(final[f"{split}/ctc_loss"]) > 0.0


def test_an_upstream_api_submission_runs_a_deepspeech_variant(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("upstream_adam")
    (submission / "submission.py").write_text(UPSTREAM_SUBMISSION)
    (submission / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": [0.001]}}')
    result = _run(pytester, submission, data_dir, tmp_path, "librispeech_deepspeech_tanh")
    result.assert_outcomes(passed=1)
    assert {"train/wer", "validation/wer", "test/ctc_loss"} <= set(_eval_rows(tmp_path, "librispeech_deepspeech_tanh")[-1])
