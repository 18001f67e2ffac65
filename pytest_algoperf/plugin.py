"""pytest hooks of the AlgoPerf benchmark: options, collection, reporting. Thin on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_algoperf import distributed, experiment_record, options, selection_cost
from pytest_algoperf.progress import PLUGIN_NAME as PROGRESS_PLUGIN, ProgressDisplay
from pytest_algoperf.reporting import SessionReporter
from pytest_algoperf.run_plan import as_params, marker_descriptions
from pytest_algoperf.session import SESSION_KEY, BenchmarkSession
from pytest_algoperf.submission_loading import SubmissionError
from workloads.base import DataProblem

pytest_plugins = ["pytest_algoperf.fixtures", "pytest_algoperf.sharding", "pytest_algoperf.gpu_assignment",
                  "pytest_algoperf.learning_curve_hooks", "pytest_algoperf.html_report"]

# The module whose test function a session's mode collects.
ITEM_MODULES = {
    "time-to-target": Path(__file__).with_name("benchmark.py"),
    "smoke": Path(__file__).with_name("smoke_gate.py"),
    "step-time": Path(__file__).with_name("step_time.py"),
}
CONCISE_ERRORS = (SubmissionError, DataProblem)


def _session(config: pytest.Config):
    return config.stash.get(SESSION_KEY, None)


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in marker_descriptions():
        config.addinivalue_line("markers", line)
    settings = options.read_settings(config)
    if not settings.enabled:
        return
    session = BenchmarkSession.from_settings(settings)
    config.stash[SESSION_KEY] = session
    if settings.mode == "time-to-target" and _is_controller(config) and session.ranks.is_writer and not config.option.collectonly:
        # Before any rank waits for the others: a refused rerun ends the session here.
        experiment_record.check_session_record(session)
    if session.ranks.distributed:
        # torchrun: every rank is one process of each item's DDP trial (see distributed.py).
        distributed.start_process_group(settings.ddp_timeout_sec)
        config.pluginmanager.register(
            distributed.RankAgreement(session.ranks, settings.ddp_timeout_sec, _is_benchmark_item), "algoperf-rank-agreement"
        )
        if not session.ranks.is_writer:
            distributed.silence_terminal(config)
    if _is_controller(config) and session.ranks.is_writer:
        config.pluginmanager.register(SessionReporter(session), "algoperf-reporter")
        if settings.mode == "time-to-target" and not config.option.collectonly:
            config.pluginmanager.register(ProgressDisplay(config), PROGRESS_PLUGIN)
    # Collect the benchmark items; when the paths came from testpaths or the
    # current dir rather than the command line, collect only them.
    item_module = str(ITEM_MODULES[settings.mode])
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    if item_module not in config.args:
        config.args = (list(config.args) if explicit else []) + [item_module]


def pytest_unconfigure(config: pytest.Config) -> None:
    session = _session(config)
    if session is not None and session.ranks.distributed:
        agreement = config.pluginmanager.get_plugin("algoperf-rank-agreement")
        if agreement is not None:
            distributed.end_session(agreement.exit_status, agreement.in_step, agreement.meet_at_the_end)


def pytest_report_header(config: pytest.Config) -> list:
    session = _session(config)
    if session is None:
        return []
    from pytest_algoperf.system_info import device_description
    import torch

    settings = session.settings
    lines = [
        f"algoperf: submission {session.paths.module_file} (sha256 {session.submission_hash})",
        f"algoperf: ruleset {settings.ruleset}, benchmark {settings.benchmark_version}, seed {settings.seed}, "
        + (
            f"{settings.studies} studies x {len({t.trial for t in session.plan}) or settings.trials} trials, budget scale {settings.budget_scale}"
            if settings.mode == "time-to-target"
            else "one run per workload"
        ),
        f"algoperf: device {device_description()}, torch {torch.__version__}",
        f"algoperf: data {settings.data_dir if settings.mode == 'time-to-target' else '(tiny data prepared for this session)'}, "
        f"results {session.experiment_dir}",
    ]
    if settings.precision != "float32":
        lines.append(f"algoperf: precision {settings.precision} (autocast) where a workload offers it (finewebedu_lm)")
    if settings.is_development_run:
        lines.append(f"algoperf: development run, every trial stops after {settings.max_steps} steps and is not scored")
    if settings.mode != "time-to-target":
        lines.append(f"algoperf: {settings.mode} session on tiny prepared data (never scored)")
    plan_cost = selection_cost.plan_cost_line(session)
    if plan_cost is not None:
        lines.append(plan_cost)
    lines += [f"algoperf: note: {note}" for note in session.notes]
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = _session(metafunc.config)
    if "algoperf_trial" in metafunc.fixturenames:
        metafunc.parametrize("algoperf_trial", as_params(session.plan if session is not None else []))
    elif "algoperf_step_case" in metafunc.fixturenames:
        metafunc.parametrize("algoperf_step_case", as_params(session.step_time_plan if session is not None else []))


def pytest_report_collectionfinish(config: pytest.Config, items) -> list:
    """After -k/-m/--algoperf-shard: what the selected trials cost in device-hours."""
    session = _session(config)
    if session is None:
        return []
    trials = [trial for trial in map(selection_cost.trial_of, items) if trial is not None]
    return selection_cost.session_cost_lines(session, trials, verbose=config.get_verbosity() >= 0)


COST_SHOWN_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    """Under -n the controller collects nothing: the cost comes from the first worker's items."""
    config = node.config
    session = _session(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if session is None or reporter is None or config.stash.get(COST_SHOWN_KEY, False):
        return
    config.stash[COST_SHOWN_KEY] = True
    lines = selection_cost.session_cost_lines(session, selection_cost.trials_by_node_ids(ids, session.plan),
                                              verbose=config.get_verbosity() >= 0)
    if lines and config.get_terminal_writer().width_of_current_line:
        reporter.line("")
    for line in lines:
        reporter.line(line)


def _is_benchmark_item(item: pytest.Item) -> bool:
    return "algoperf_trial" in item.fixturenames or "algoperf_step_case" in item.fixturenames


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, CONCISE_ERRORS) and _is_benchmark_item(item):
        # A broken submission or data dir is the user's to fix: one readable line, no traceback.
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
        report.algoperf_concise_failure = True
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if report.when == "setup" and report.failed and getattr(report, "algoperf_concise_failure", False):
        return "failed", "F", "FAILED"
    return None
