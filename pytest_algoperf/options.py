"""The `--algoperf-*` command-line options, their ini twins, and their validation into one Settings object."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

from pytest_algoperf.smoke import SMOKE_STEPS
from pytest_algoperf.trial_checkpoints import CheckpointSchedule
from scoring.versions import DEFAULT_VERSION, available_versions, load_version

RULESETS = ("external", "self")
COMPILE_MODES = ("auto", "yes", "no")
PRECISIONS = ("float32", "bf16")
SEED_SCOPES = ("study", "trial")

# (option name, ini name, help, default)
_OPTIONS = (
    ("submission", "a submission folder (submission.py + optional tuning_search_space.json) or a .py file; without it nothing is collected", None),
    ("ruleset", "tuning ruleset: external (search space, 5 trials) or self (no hyperparameters, budget x1.5)", "external"),
    ("trials", "tuning trials per study (default: the benchmark version's, 5; self-tuning runs 1)", None),
    ("studies", "studies (independent repetitions, each with its own seeds) per workload (default: the version's, 3 in v0.6)", None),
    ("data-dir", "where prepared data sets live (default: <rootdir>/data)", None),
    ("results-dir", "where result logs are written (default: <rootdir>/results)", None),
    ("experiment", "experiment name, the folder under the results dir (default: the submission's name)", None),
    ("seed", "base seed; every (workload, study) seed is derived from it by hashing (see --algoperf-seeds)", "0"),
    ("seeds", "study: one seed per (workload, study), shared by its trials, as official scoring runs; trial: a seed per trial", "study"),
    ("max-steps", "development only: end each run after N steps (the run is never scored)", None),
    ("budget-scale", "multiply runtime budgets, for hardware slower or faster than the reference; recorded in the results", "1.0"),
    ("benchmark-version", "benchmark rules and numbers: v0.6 (the published leaderboard), a100 (4x A100, 9 workloads) or v0.5", DEFAULT_VERSION),
    ("torch-compile", "torch.compile the models upstream compiles: auto (only on CUDA), yes or no", "auto"),
    ("precision", "compute precision of the workloads that offer a choice (finewebedu_lm): float32 (TF32 matmuls where the benchmark version turns them on, as the A100 runs) or bf16 (autocast in model_fn and loss_fn)", "float32"),
    ("timeout", "seconds a single submission call may take before its item fails, naming the call and step", None),
    ("smoke-steps", "steps each smoke item trains (at least 5 catches early divergence)", None),
    ("shard", "K/N: run only the K-th of N disjoint shards of the selected items, balanced by runtime budget (one per cluster job)", None),
    ("gpus-per-trial", "with pytest -n: GPUs each xdist worker (so each trial) gets; workers never share GPUs", "1"),
    ("checkpoint-every", "checkpoint trials off the clock: N (every N-th eval), Ns (every N seconds of wall time) or 0 (never)", "1"),
    ("ddp-timeout", "under torchrun: seconds a rank waits in a collective for the others before the item fails", "900"),
    ("speedup-base", "with --algoperf-compare: the reference submission the per-workload speedups are against, by its name in the scoring report (default: the first --algoperf-compare dir, when it holds one submission)", None),
)
# (flag name, help)
_FLAGS = (
    ("smoke", "CI gate: one short run per workload on tiny data through the real preparation path, with API and rules checks"),
    ("variants", "with --algoperf-smoke or --algoperf-benchmark-steps: include the workload variants"),
    ("benchmark-steps", "time update_params per workload (pytest-benchmark) next to the NAdamW baseline's"),
    ("stop-diverged", "end a trial at the first eval with a non-finite loss instead of training on to the budget (saves compute; the trial is 'diverged' either way)"),
    ("overwrite", "start the experiment's trials over instead of resuming them and reusing finished ones"),
)
COMPARE_HELP = (
    "reference result logs (an AlgoPerf submission dir, or a dir of several) to score this run against at the end; repeatable"
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("algoperf", "AlgoPerf training-algorithm benchmark")
    for name, help_text, default in _OPTIONS:
        ini_name = "algoperf_" + name.replace("-", "_")
        group.addoption(f"--algoperf-{name}", dest=ini_name, default=None, help=f"{help_text} [ini: {ini_name}]")
        parser.addini(ini_name, help=help_text, default=default)
    for name, help_text in _FLAGS:
        ini_name = "algoperf_" + name.replace("-", "_")
        group.addoption(f"--algoperf-{name}", dest=ini_name, action="store_true", default=None, help=f"{help_text} [ini: {ini_name}]")
        parser.addini(ini_name, help=help_text, type="bool", default=False)
    group.addoption("--algoperf-compare", dest="algoperf_compare", action="append", default=None, metavar="DIR",
                    help=f"{COMPARE_HELP} [ini: algoperf_compare]")
    parser.addini("algoperf_compare", help=COMPARE_HELP, type="linelist", default=[])


@dataclasses.dataclass(frozen=True)
class Settings:
    submission: Optional[Path]
    ruleset: str
    trials: int
    studies: int
    data_dir: Path
    results_dir: Path
    experiment: Optional[str]
    seed: int
    max_steps: Optional[int]
    budget_scale: float
    benchmark_version: str
    torch_compile: str
    precision: str = "float32"
    compare: tuple = ()
    smoke: bool = False
    variants: bool = False
    benchmark_steps: bool = False
    timeout: Optional[float] = None
    seed_scope: str = "study"
    smoke_steps: int = SMOKE_STEPS
    stop_diverged: bool = False
    shard: Optional[Tuple[int, int]] = None  # (K, N), 1-based K
    gpus_per_trial: int = 1
    checkpoint_schedule: CheckpointSchedule = CheckpointSchedule()
    overwrite: bool = False
    ddp_timeout_sec: float = 900.0
    speedup_base: Optional[str] = None

    @property
    def mode(self) -> str:
        """'smoke', 'step-time' or 'time-to-target': which items the session collects."""
        if self.smoke:
            return "smoke"
        return "step-time" if self.benchmark_steps else "time-to-target"

    @property
    def enabled(self) -> bool:
        return self.submission is not None

    @property
    def is_development_run(self) -> bool:
        return self.max_steps is not None



def _raw(config: pytest.Config, name: str) -> Any:
    ini_name = "algoperf_" + name.replace("-", "_")
    value = config.getoption(ini_name)
    return value if value is not None else config.getini(ini_name) or None


def _flag(config: pytest.Config, name: str) -> bool:
    ini_name = "algoperf_" + name.replace("-", "_")
    value = config.getoption(ini_name)
    return bool(value) if value is not None else bool(config.getini(ini_name))


def _int(config: pytest.Config, name: str, errors: List[str], minimum: int) -> Optional[int]:
    value = _raw(config, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        errors.append(f"--algoperf-{name}={value!r} is not a whole number; pass e.g. --algoperf-{name}={max(minimum, 1)}")
        return None
    if number < minimum:
        errors.append(f"--algoperf-{name}={number} must be at least {minimum}")
        return None
    return number


def _path(config: pytest.Config, name: str, default: Path) -> Path:
    value = _raw(config, name)
    # Absolute, so xdist workers and the controller agree whatever their working dir.
    return (Path(value).expanduser() if value is not None else default).resolve()


def read_settings(config: pytest.Config) -> Settings:
    """All options at once; every problem is reported together in one UsageError."""
    errors: List[str] = []
    rootdir = Path(config.rootpath)
    submission_value = _raw(config, "submission")
    submission = Path(submission_value).expanduser() if submission_value else None
    if submission is not None and not submission.exists():
        errors.append(f"--algoperf-submission={submission_value}: no such file or folder; give a folder with submission.py or a .py file")

    ruleset = _raw(config, "ruleset") or "external"
    if ruleset not in RULESETS:
        errors.append(f"--algoperf-ruleset={ruleset!r} is unknown; use one of {', '.join(RULESETS)}")
        ruleset = "external"

    trials = _int(config, "trials", errors, minimum=1)
    if ruleset == "self" and trials not in (None, 1):
        errors.append(f"--algoperf-trials={trials} contradicts --algoperf-ruleset=self (self-tuning runs one trial per study); drop --algoperf-trials")
    studies = _int(config, "studies", errors, minimum=1)
    seed = _int(config, "seed", errors, minimum=0)
    seed_scope = _raw(config, "seeds") or "study"
    if seed_scope not in SEED_SCOPES:
        errors.append(f"--algoperf-seeds={seed_scope!r} is unknown; use study (upstream's default) or trial")
        seed_scope = "study"
    smoke_steps = _int(config, "smoke-steps", errors, minimum=1)
    max_steps = _int(config, "max-steps", errors, minimum=1)

    budget_scale_value = _raw(config, "budget-scale") or "1.0"
    try:
        budget_scale = float(budget_scale_value)
        if not budget_scale > 0 or budget_scale == float("inf"):
            raise ValueError
    except ValueError:
        errors.append(f"--algoperf-budget-scale={budget_scale_value!r} must be a positive number, e.g. 2.0 for hardware half as fast")
        budget_scale = 1.0

    version = _raw(config, "benchmark-version") or DEFAULT_VERSION
    if version not in available_versions():
        errors.append(f"--algoperf-benchmark-version={version!r} is unknown; use one of {', '.join(available_versions())}")
        version = DEFAULT_VERSION
    rules = load_version(version)
    compile_mode = _raw(config, "torch-compile") or "auto"
    if compile_mode not in COMPILE_MODES:
        errors.append(f"--algoperf-torch-compile={compile_mode!r} is unknown; use one of {', '.join(COMPILE_MODES)}")

    precision = _raw(config, "precision") or "float32"
    if precision not in PRECISIONS:
        errors.append(f"--algoperf-precision={precision!r} is unknown; use one of {', '.join(PRECISIONS)}")

    compare_values = config.getoption("algoperf_compare") or config.getini("algoperf_compare") or []
    compare = tuple(Path(value).expanduser().resolve() for value in compare_values)
    for value, path in zip(compare_values, compare):
        if not path.is_dir():
            errors.append(f"--algoperf-compare={value}: no such directory; give the folder holding the reference's study_* dirs")
    speedup_base = _raw(config, "speedup-base")
    if speedup_base is not None:
        _check_speedup_base(speedup_base, compare, ruleset == "self", errors)
    if compare and max_steps is not None:
        errors.append("--algoperf-compare contradicts --algoperf-max-steps (a max-steps run is never scored); drop one of them")

    smoke, variants, benchmark_steps = (_flag(config, name) for name in ("smoke", "variants", "benchmark-steps"))
    stop_diverged = _flag(config, "stop-diverged")
    if smoke_steps is not None and not smoke:
        errors.append("--algoperf-smoke-steps applies to --algoperf-smoke; drop it or add --algoperf-smoke")
    if smoke and benchmark_steps:
        errors.append("--algoperf-smoke and --algoperf-benchmark-steps are separate sessions; run them one at a time")
    if variants and not (smoke or benchmark_steps):
        errors.append("--algoperf-variants applies to --algoperf-smoke and --algoperf-benchmark-steps (full runs include variants already)")
    if (smoke or benchmark_steps) and compare:
        errors.append("--algoperf-compare needs a scored run; drop it from smoke and step-time sessions")
    timeout = _positive_seconds(config, "timeout", errors, default=None)
    shard = _shard(_raw(config, "shard"), errors)
    gpus_per_trial = _int(config, "gpus-per-trial", errors, minimum=1)
    checkpoint_value = _raw(config, "checkpoint-every") or "1"
    try:
        checkpoint_schedule = CheckpointSchedule.parse(checkpoint_value)
    except ValueError as error:
        errors.append(f"--algoperf-checkpoint-every={checkpoint_value!r}: {error}")
        checkpoint_schedule = CheckpointSchedule()
    ddp_timeout = _positive_seconds(config, "ddp-timeout", errors, default=900.0)

    if errors:
        raise pytest.UsageError("AlgoPerf options are invalid:\n  " + "\n  ".join(errors))
    return Settings(
        submission=submission,
        ruleset=ruleset,
        trials=trials if trials is not None else (rules.num_trials if ruleset == "external" else 1),
        studies=studies if studies is not None else rules.num_studies,
        data_dir=_path(config, "data-dir", rootdir / "data"),
        results_dir=_path(config, "results-dir", rootdir / "results"),
        experiment=_raw(config, "experiment"),
        seed=seed if seed is not None else 0,
        max_steps=max_steps,
        budget_scale=budget_scale,
        benchmark_version=version,
        torch_compile=compile_mode,
        precision=precision,
        compare=compare,
        smoke=smoke,
        variants=variants,
        benchmark_steps=benchmark_steps,
        timeout=timeout,
        seed_scope=seed_scope,
        smoke_steps=smoke_steps if smoke_steps is not None else SMOKE_STEPS,
        stop_diverged=stop_diverged,
        shard=shard,
        gpus_per_trial=gpus_per_trial if gpus_per_trial is not None else 1,
        checkpoint_schedule=checkpoint_schedule,
        overwrite=_flag(config, "overwrite"),
        ddp_timeout_sec=ddp_timeout,
        speedup_base=speedup_base,
    )


def reference_names(compare: Tuple[Path, ...], self_tuning: bool) -> List[str]:
    """The names the scoring report gives the submissions found in the --algoperf-compare dirs."""
    from scoring.layout import LogLayoutError
    from scoring.pipeline import resolve_submissions
    from scoring.problems import Problems

    names: List[str] = []
    for path in compare:
        try:
            names += resolve_submissions({path.name: path}, self_tuning, Problems())
        except (LogLayoutError, ValueError):
            continue  # no logs there: scoring names the problem at the end of the session
    return names


def _check_speedup_base(name: str, compare: Tuple[Path, ...], self_tuning: bool, errors: List[str]) -> None:
    if not compare:
        errors.append(f"--algoperf-speedup-base={name} needs reference logs; add --algoperf-compare=DIR or drop it")
        return
    names = reference_names(compare, self_tuning)
    if names and name not in names:
        errors.append(f"--algoperf-speedup-base={name} is none of the reference submissions; use one of {', '.join(names)}")


def _shard(value: Optional[str], errors: List[str]) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    index, _, count = str(value).partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        errors.append(f"--algoperf-shard={value!r} is not K/N; pass e.g. --algoperf-shard=1/4 for the first of four shards")
        return None
    if not 1 <= shard[0] <= shard[1]:
        errors.append(f"--algoperf-shard={value}: K must be between 1 and N (shards are numbered 1..{max(shard[1], 1)})")
        return None
    return shard


def _positive_seconds(config: pytest.Config, name: str, errors: List[str], default: Optional[float]) -> Optional[float]:
    value = _raw(config, name)
    if value is None:
        return default
    try:
        seconds = float(value)
        if not seconds > 0:
            raise ValueError
    except ValueError:
        errors.append(f"--algoperf-{name}={value!r} must be a positive number of seconds")
        return default
    return seconds
