"""A trial's run description: meta_data_0.json and flags_0.json with the keys upstream's runner writes.

Upstream dumps every absl flag its process defines, so flags_0.json holds the
absl and TensorFlow library flags around the runner's own; they are written
here with the libraries' defaults (the values a real upstream trial shows),
the runner flags with this session's values, and this plugin's own settings
after all of upstream's keys. meta_data_0.json is the workload's properties,
the system keys (see system_info) and the trial's seed, then our extras.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Tuple

from pytest_algoperf.compilation import should_compile
from pytest_algoperf.results import FRAMEWORK, workload_properties
from pytest_algoperf.run_plan import TrialSpec
from pytest_algoperf.session import BenchmarkSession
from pytest_algoperf.system_info import extra_meta_data, system_meta_data

# Flags of absl (logging, app, testing) and of TensorFlow/XLA/Orbax that come before the runner's flags
# in upstream's dump, with their default values.
LIBRARY_FLAGS_BEFORE: Dict[str, Any] = {
    "logtostderr": False,
    "alsologtostderr": False,
    "log_dir": "",
    "v": 0,
    "verbosity": 0,
    "logger_levels": {},
    "stderrthreshold": "fatal",
    "showprefixforinfo": True,
    "run_with_pdb": False,
    "pdb_post_mortem": False,
    "pdb": False,
    "run_with_profiling": False,
    "profile_file": None,
    "use_cprofile_for_profiling": True,
    "only_check_args": False,
    "op_conversion_fallback_to_while_loop": True,
    "delta_threshold": 0.5,
    "tt_check_filter": False,
    "tt_single_core_summaries": False,
    "runtime_oom_exit": True,
    "hbm_oom_exit": True,
    "test_srcdir": "",
    "test_tmpdir": "/tmp/absl_testing",
    "test_random_seed": 301,
    "test_randomize_ordering_seed": "",
    "xml_output_file": "",
    "experimental_orbax_use_distributed_process_id": False,
}

# absl's help flags and a TFDS flag, defined after the runner's flags were, so dumped after them.
LIBRARY_FLAGS_AFTER: Dict[str, Any] = {
    "?": False,
    "help": False,
    "helpshort": False,
    "helpfull": False,
    "helpxml": False,
    "tfds_debug_list_dir": False,
}

SMOKE_DATA_DIR = "(tiny data made for this session)"


def trial_meta_data(workload: Any, rng_seed: int) -> Dict[str, Any]:
    """meta_data_0.json: upstream's keys in its order (workload, utilisation, software, hardware, seed), then ours."""
    return {**workload_properties(workload), **system_meta_data(), "rng_seed": rng_seed, **extra_meta_data()}


def runner_flags(session: BenchmarkSession, trial: TrialSpec, device: Any) -> Dict[str, Any]:
    """Upstream's submission_runner flags in its order, as this session sets them.

    Flags whose feature this plugin does not have take the value that keeps it off
    (no checkpoints written, no wandb, no profiler), or the runner's default.
    """
    settings = session.settings
    external = settings.ruleset == "external"
    return {
        "submission_path": str(session.paths.module_file),
        "workload": trial.workload,
        "tuning_ruleset": settings.ruleset,
        "tuning_search_space": str(session.paths.search_space_file) if session.paths.search_space_file else None,
        "num_tuning_trials": settings.trials,
        # Smoke runs make tiny data in a temporary dir, different every session; the placeholder says so.
        "data_dir": str(settings.data_dir) if settings.mode == "time-to-target" else SMOKE_DATA_DIR,
        "imagenet_v2_data_dir": None,
        "librispeech_tokenizer_vocab_path": "",
        "framework": FRAMEWORK,
        "torch_compile": should_compile(settings.torch_compile, device),
        "experiment_dir": str(settings.results_dir),
        # Upstream runs each study as its own experiment, named with the study folder: the trial dir is
        # experiment_dir/experiment_name/<workload>_pytorch/trial_<k>.
        "experiment_name": f"{session.experiment}/study_{trial.study}",
        "save_checkpoints": False,
        "save_intermediate_checkpoints": True,
        "resume_last_run": None,
        "append_timestamp": False,
        "use_wandb": False,
        "profile": False,
        "max_global_steps": settings.max_steps,
        "overwrite": True,
        # Trial k runs tuning point k-1, as upstream's --hparam_start_index=k-1 --hparam_end_index=k.
        "hparam_start_index": trial.trial - 1 if external else None,
        "hparam_end_index": trial.trial if external else None,
        "rng_seed": trial.seed,
        "set_pytorch_max_split_size": False,
        "pytorch_eval_num_workers": 0,
    }


def trial_flags(session: BenchmarkSession, trial: TrialSpec, batch_sizes: Tuple[int, int], device: Any) -> Dict[str, Any]:
    """flags_0.json: every key of upstream's flag dump in its order, then this plugin's own settings."""
    settings = session.settings
    own = {
        "study": trial.study,
        "base_seed": settings.seed,
        "seeds": settings.seed_scope,  # study: rng_seed is shared by the study's trials; trial: a seed per trial
        "stop_diverged": settings.stop_diverged,
        "budget_scale": settings.budget_scale,
        "benchmark_version": settings.benchmark_version,
        "global_batch_size": batch_sizes[0],
        "global_eval_batch_size": batch_sizes[1],
        "submission_hash": session.submission_hash,
    }
    return {
        **copy.deepcopy(LIBRARY_FLAGS_BEFORE),  # fresh copies: logger_levels is a dict
        **runner_flags(session, trial, device),
        **LIBRARY_FLAGS_AFTER,
        **own,
    }
