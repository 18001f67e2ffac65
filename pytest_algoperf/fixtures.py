"""Fixtures that supply one trial: the submission, the workload, its data, model, hyperparameters and logger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import pytest

from pytest_algoperf import progress, results, resume, runner, trial_checkpoints
from pytest_algoperf.call_monitor import RecordingQueue
from pytest_algoperf.compilation import compile_like_upstream, should_compile
from pytest_algoperf.run_plan import TrialSpec
from pytest_algoperf.runner_protocol import RunnerProtocol
from pytest_algoperf.session import SESSION_KEY, BenchmarkSession
from pytest_algoperf.smoke import reduced_batch_sizes, timed
from pytest_algoperf.submission_loading import Submission, SubmissionError, load_submission
from pytest_algoperf.run_description import trial_flags, trial_meta_data
from pytest_algoperf.api.halton import hyperparameters_as_dict
from workloads.base import BenchmarkWorkload, DataProblem
from workloads.registry import benchmark_version_for, get_workload
from workloads.smoke_data import prepare_smoke_data


@pytest.fixture(scope="session")
def algoperf_session(request: pytest.FixtureRequest) -> BenchmarkSession:
    return request.config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def algoperf_device(request: pytest.FixtureRequest) -> Any:
    from pytest_algoperf.api.pytorch_utils import pytorch_setup

    from pytest_algoperf.device_settings import apply_benchmark_settings

    device = pytorch_setup()[2]
    apply_benchmark_settings(request.config.stash[SESSION_KEY].settings.benchmark_version)
    worker_count = getattr(request.config, "workerinput", {}).get("workercount")
    if device.type == "cpu" and worker_count:
        # xdist workers share the cores instead of each taking all of them.
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // worker_count))
    return device


@pytest.fixture(scope="session")
def algoperf_submission(algoperf_session: BenchmarkSession) -> Submission:
    """The loaded submission module; an import failure fails every item with the same message."""
    return load_submission(algoperf_session.paths.module_file)


@pytest.fixture(scope="session")
def algoperf_data_dir(algoperf_session: BenchmarkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The prepared data: the user's for full runs, tiny data made on the fly for smoke and step-time runs."""
    if algoperf_session.settings.mode == "time-to-target":
        return str(algoperf_session.settings.data_dir)
    return str(tmp_path_factory.mktemp("algoperf-tiny-data"))


def ready_workload(name: str, session: BenchmarkSession, data_dir: str) -> BenchmarkWorkload:
    """A fresh workload on prepared data; missing data skips the item with the command that prepares it."""
    workload = get_workload(name, benchmark_version_for(name, session.settings.benchmark_version))
    workload.use_precision(session.settings.precision)
    if session.settings.mode != "time-to-target":
        prepare_smoke_data(workload.dataset_name, Path(data_dir))
    status = workload.data_status(data_dir)
    if status.missing:
        pytest.skip(status.reason)
    if not status.ready:
        raise DataProblem(status.reason)
    workload.use_prepared_data(data_dir)
    return workload


@pytest.fixture
def algoperf_workload(algoperf_trial: TrialSpec, algoperf_session: BenchmarkSession, algoperf_data_dir: str) -> BenchmarkWorkload:
    return ready_workload(algoperf_trial.workload, algoperf_session, algoperf_data_dir)


@pytest.fixture
def algoperf_hyperparameters(algoperf_trial: TrialSpec) -> Any:
    return algoperf_trial.hyperparameters


@pytest.fixture
def algoperf_rngs(algoperf_trial: TrialSpec, algoperf_session: BenchmarkSession) -> runner.TrialRngs:
    return runner.trial_rngs(algoperf_trial.seed, algoperf_session.settings.ruleset)


@pytest.fixture
def algoperf_batch_sizes(
    algoperf_trial: TrialSpec,
    algoperf_submission: Submission,
    algoperf_workload: BenchmarkWorkload,
    algoperf_session: BenchmarkSession,
    request: pytest.FixtureRequest,
) -> Tuple[int, int]:
    """(global train batch size, global eval batch size), both divisible by the GPU count; capped in smoke runs."""
    entry = algoperf_trial.entry
    train_size, seconds = timed(algoperf_submission.batch_size, entry.name, entry.base)
    request.node.algoperf_batch_size_seconds = seconds
    eval_size = algoperf_submission.eval_batch_size(entry.name, algoperf_workload.eval_batch_size)
    from pytest_algoperf.api.pytorch_utils import pytorch_setup

    n_gpus = pytorch_setup()[3]
    for label, size in (("get_batch_size", train_size), ("get_eval_batch_size", eval_size)):
        if n_gpus > 1 and size % n_gpus:
            raise SubmissionError(f"{label} returned {size}, which does not divide across {n_gpus} GPUs; return a multiple of {n_gpus}.")
    if algoperf_session.settings.mode == "smoke":
        workload = algoperf_workload
        largest_split = max(workload.num_eval_train_examples, workload.num_validation_examples, workload.num_test_examples or 0)
        return reduced_batch_sizes(train_size, eval_size, largest_split, devices=max(n_gpus, 1), cap=workload.SMOKE_BATCH_SIZE)
    return train_size, eval_size


@pytest.fixture
def algoperf_input_queue(
    algoperf_workload: BenchmarkWorkload,
    algoperf_rngs: runner.TrialRngs,
    algoperf_batch_sizes: Tuple[int, int],
    algoperf_data_dir: str,
    algoperf_session: BenchmarkSession,
) -> Iterator[Any]:
    queue = algoperf_workload._build_input_queue(algoperf_rngs.data, "train", algoperf_data_dir, algoperf_batch_sizes[0])
    # Smoke runs check that data_selection keeps the queue's keys; timed runs count the batches drawn,
    # which is what a checkpoint needs to continue the queue.
    return RecordingQueue(queue) if algoperf_session.settings.mode == "smoke" else trial_checkpoints.CountingQueue(queue)


@pytest.fixture
def algoperf_trial_dir(algoperf_trial: TrialSpec, algoperf_session: BenchmarkSession) -> Path:
    settings = algoperf_session.settings
    return results.trial_dir(settings.results_dir, algoperf_session.experiment, algoperf_trial.study, algoperf_trial.workload, algoperf_trial.trial)


@pytest.fixture
def algoperf_trial_history(algoperf_trial_dir: Path, algoperf_session: BenchmarkSession) -> resume.TrialHistory:
    """What an earlier run left of this trial; every rank follows the writer's reading of the folder."""
    settings = algoperf_session.settings
    if settings.mode != "time-to-target" or settings.overwrite:
        return resume.TrialHistory(resume.FRESH)
    return algoperf_session.ranks.from_writer(lambda: resume.trial_history(algoperf_trial_dir))


@pytest.fixture
def algoperf_checkpoint(algoperf_trial_history: resume.TrialHistory, algoperf_device: Any) -> Any:
    """The checkpoint an interrupted trial resumes from (loaded off the clock), or None."""
    import warnings

    return resume.load_checkpoint(algoperf_trial_history, algoperf_device, warn=warnings.warn)


@pytest.fixture
def algoperf_model(
    algoperf_trial: TrialSpec,
    algoperf_workload: BenchmarkWorkload,
    algoperf_rngs: runner.TrialRngs,
    algoperf_submission: Submission,
    algoperf_hyperparameters: Any,
    algoperf_session: BenchmarkSession,
    algoperf_device: Any,
) -> Tuple[Any, Any]:
    """(model, model_state), initialised from the trial's model rng and compiled where upstream compiles."""
    if algoperf_submission.api_version == "v0.5" or RunnerProtocol.of_version(algoperf_session.settings.benchmark_version).dropout_fixed_at_init:
        # v0.5's runner built the model with the trial's dropout rates; model_fn then took none.
        algoperf_workload.fix_dropout_at_init(
            getattr(algoperf_hyperparameters, "dropout_rate", None), getattr(algoperf_hyperparameters, "aux_dropout_rate", None)
        )
    model, model_state = algoperf_workload.init_model_fn(algoperf_rngs.model_init)
    if should_compile(algoperf_session.settings.torch_compile, algoperf_device):
        model = compile_like_upstream(algoperf_workload, model, algoperf_trial.entry.base)
    return model, model_state


@pytest.fixture
def algoperf_run_trial(
    request: pytest.FixtureRequest,
    algoperf_trial: TrialSpec,
    algoperf_session: BenchmarkSession,
    algoperf_workload: BenchmarkWorkload,
    algoperf_submission: Submission,
    algoperf_hyperparameters: Any,
    algoperf_rngs: runner.TrialRngs,
    algoperf_batch_sizes: Tuple[int, int],
    algoperf_input_queue: Iterator[Any],
    algoperf_model: Tuple[Any, Any],
    algoperf_trial_logger: Any,
    algoperf_device: Any,
    algoperf_data_dir: str,
    algoperf_trial_dir: Path,
    algoperf_checkpoint: Any,
):
    """This item's trial, ready to train: call `run(max_allowed_runtime_sec, max_global_steps, monitor)`.

    The run happens in the test body, so what goes wrong in it fails the item rather than erroring its set-up.
    Its progress goes to the session's display (progress.py) where one shows it.
    """

    def run(max_allowed_runtime_sec: float, max_global_steps: Any, monitor: Any = None) -> runner.TrialOutcome:
        model, model_state = algoperf_model
        return runner.run_trial(
            algoperf_workload,
            algoperf_submission,
            algoperf_hyperparameters,
            model,
            model_state,
            algoperf_input_queue,
            algoperf_rngs,
            runner.TrialSettings(
                ruleset=algoperf_session.settings.ruleset,
                data_dir=algoperf_data_dir,
                max_allowed_runtime_sec=max_allowed_runtime_sec,
                global_eval_batch_size=algoperf_batch_sizes[1],
                max_global_steps=max_global_steps,
                protocol=RunnerProtocol.of_version(algoperf_session.settings.benchmark_version),
                stop_on_divergence=algoperf_session.settings.stop_diverged,
                strict=algoperf_session.settings.mode == "smoke",
                checkpoint_schedule=algoperf_session.settings.checkpoint_schedule,
                checkpoint_dir=str(algoperf_trial_dir) if _checkpoints_trials(algoperf_session) else None,
            ),
            logger=algoperf_trial_logger,
            clock=runner.synchronized_clock(algoperf_device, use_ddp=algoperf_session.ranks.distributed),
            monitor=monitor,
            checkpoint=algoperf_checkpoint,
            ranks=algoperf_session.ranks,
            progress=progress.trial_listener(request.config, algoperf_session, algoperf_trial, algoperf_workload,
                                             max_allowed_runtime_sec),
        )

    return run


def _checkpoints_trials(session: BenchmarkSession) -> bool:
    return session.settings.mode == "time-to-target" and session.settings.checkpoint_schedule.enabled


@pytest.fixture
def algoperf_trial_logger(
    algoperf_trial: TrialSpec,
    algoperf_session: BenchmarkSession,
    algoperf_workload: BenchmarkWorkload,
    algoperf_batch_sizes: Tuple[int, int],
    algoperf_device: Any,
    algoperf_trial_dir: Path,
    algoperf_checkpoint: Any,
) -> Optional[results.TrialLogger]:
    """The trial's logger, on the writer rank only (None elsewhere, as upstream's metrics logger).

    A new trial gets an emptied folder with hparams.json, meta_data_0.json and flags_0.json; a resumed
    one keeps its folder and adds meta_data_<n>.json and flags_<n>.json for its preemption count n.
    """
    if not algoperf_session.ranks.is_writer:
        return None
    preemption_count = 0 if algoperf_checkpoint is None else algoperf_checkpoint["preemption_count"] + 1
    if algoperf_checkpoint is None:
        results.clear_trial_dir(algoperf_trial_dir)
    logger = results.TrialLogger(algoperf_trial_dir)
    logger.write_hparams(hyperparameters_as_dict(algoperf_trial.hyperparameters))
    meta_data = trial_meta_data(algoperf_workload, algoperf_trial.seed)
    flags = trial_flags(algoperf_session, algoperf_trial, algoperf_batch_sizes, algoperf_device)
    logger.write_run_description(meta_data, flags, preemption_count)
    if algoperf_session.settings.mode == "time-to-target":
        resume.mark_running(algoperf_trial_dir, preemption_count)
    return logger

