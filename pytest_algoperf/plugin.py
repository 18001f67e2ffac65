"""pytest hooks of the AlgoPerf benchmark: options, collection, reporting. Thin on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_algoperf import options
from pytest_algoperf.reporting import SessionReporter
from pytest_algoperf.run_plan import as_params, marker_descriptions
from pytest_algoperf.session import SESSION_KEY, BenchmarkSession
from pytest_algoperf.submission_loading import SubmissionError
from workloads.base import DataProblem

pytest_plugins = ["pytest_algoperf.fixtures"]

BENCHMARK_ITEMS_MODULE = Path(__file__).with_name("benchmark.py")
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
    if _is_controller(config):
        config.pluginmanager.register(SessionReporter(session), "algoperf-reporter")
    # Collect the benchmark items; when the paths came from testpaths or the
    # current dir rather than the command line, collect only them.
    item_module = str(BENCHMARK_ITEMS_MODULE)
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    if item_module not in config.args:
        config.args = (list(config.args) if explicit else []) + [item_module]


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
        f"{settings.studies} studies x {len({t.trial for t in session.plan}) or settings.trials} trials, budget scale {settings.budget_scale}",
        f"algoperf: device {device_description()}, torch {torch.__version__}",
        f"algoperf: data {settings.data_dir}, results {session.experiment_dir}",
    ]
    if settings.is_development_run:
        lines.append(f"algoperf: development run, every trial stops after {settings.max_steps} steps and is not scored")
    lines += [f"algoperf: note: {note}" for note in session.notes]
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "algoperf_trial" not in metafunc.fixturenames:
        return
    session = _session(metafunc.config)
    plan = session.plan if session is not None else []
    metafunc.parametrize("algoperf_trial", as_params(plan))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, CONCISE_ERRORS) and "algoperf_trial" in item.fixturenames:
        # A broken submission or data dir is the user's to fix: one readable line, no traceback.
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
        report.algoperf_concise_failure = True
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if report.when == "setup" and report.failed and getattr(report, "algoperf_concise_failure", False):
        return "failed", "F", "FAILED"
    return None
