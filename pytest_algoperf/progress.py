"""Live progress of the running trials: step, time on the clock against the budget, the latest
validation metric against the target, and whether the trial is on track.

The runner tells a trial's listener of its start, of every eval and of its end (`run_trial(progress=...)`),
inside the eval's logging time, so never on the submission's clock; whatever a listener raises is
dropped there. Only the process that reports shows anything: the controller under xdist, rank 0
under torchrun (the other ranks have no listener at all).

What is shown (``ALGOPERF_PROGRESS`` forces a mode; by default it follows the terminal and -q):

    live     a terminal: one status of every running trial, redrawn in place to the right of
             pytest's own output and erased before pytest prints anything, so pytest's lines stay as
             they are
    lines    output that is not a terminal (CI logs): one line per eval, and one when a trial finishes
    trials   -q: one line per finished trial only
    off      -qq, or ALGOPERF_PROGRESS=off

Under `pytest -n` the workers cannot print: each appends its trials' events as JSON lines to a file
of its own in a temporary folder the controller hands it (in `workerinput`); a controller thread
reads the files every half second, and before each item's report it reads them once more, so an
item's eval lines always come before its result. The folder is removed when the session ends.

"On track" claims no more than the evals show. A trial is
    reached      once an eval beat the validation target;
    on track     when, at the rate its metric moved over its last three evals (at least two),
                 it would beat the target before the budget runs out;
    off track    when at that rate it would not, or its metric did not improve over those evals;
    early        before a second eval gives a rate.
Learning curves flatten, so a linear rate is optimistic: "off track" is the firmer of the two.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pytest

ENV_VAR = "ALGOPERF_PROGRESS"
MODES = ("auto", "live", "lines", "trials", "off")
PLUGIN_NAME = "algoperf-progress"
WORKERINPUT_KEY = "algoperf_progress_dir"
POLL_INTERVAL_SEC = 0.5
RATE_WINDOW = 3  # the recent rate runs from the oldest to the newest of the last this-many evals
PREFIX = "algoperf:"

Listener = Callable[[Dict[str, Any]], None]


# --- which mode --------------------------------------------------------------------------------


def requested_mode(environ: Optional[Dict[str, str]] = None) -> str:
    """The mode ALGOPERF_PROGRESS asks for ("auto" when unset); an unknown one is a usage error."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise pytest.UsageError(f"{ENV_VAR}={value!r} is unknown; use one of {', '.join(MODES)} (auto: live on a "
                                "terminal, a line per eval otherwise, a line per finished trial under -q)")
    return value


def choose_mode(requested: str, verbosity: int, isatty: bool) -> str:
    if requested != "auto":
        return requested
    if verbosity <= -2:
        return "off"
    if verbosity == -1:
        return "trials"
    return "live" if isatty else "lines"


def reports_progress(session: Any) -> bool:
    """Whether this process's trials have a listener: time-to-target items on the writer rank only
    (under torchrun every rank runs the same trial; rank 0 speaks for it)."""
    return session.settings.mode == "time-to-target" and session.ranks.is_writer


# --- where a trial stands ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Assessment:
    state: str  # "reached", "on track", "off track" or "early"
    detail: str = ""


def _beats(value: float, target: float, higher_is_better: bool) -> bool:
    return value > target if higher_is_better else value < target


def assess(points: Sequence[Tuple[float, float]], target: float, higher_is_better: bool, budget_sec: float,
           reached: bool = False) -> Assessment:
    """Where a trial stands, from its evals' (seconds on the clock, validation metric) points."""
    if reached:
        return Assessment("reached")
    finite = [(seconds, value) for seconds, value in points if math.isfinite(value)]
    window = finite[-RATE_WINDOW:]
    if len(window) < 2 or window[-1][0] <= window[0][0]:
        return Assessment("early", "needs a second eval for a rate")
    (start_sec, start_value), (now_sec, now_value) = window[0], window[-1]
    rate = (now_value - start_value) / (now_sec - start_sec)  # metric units per second on the clock
    if rate == 0 or (rate > 0) != higher_is_better:
        return Assessment("off track", f"not improving over the last {len(window)} evals")
    target_sec = now_sec + (target - now_value) / rate
    if target_sec <= budget_sec:
        return Assessment("on track", f"at the recent rate the target falls at ~{target_sec:,.0f} s")
    at_budget = now_value + rate * (budget_sec - now_sec)
    return Assessment("off track", f"at the recent rate {at_budget:.4g} by the budget")


@dataclasses.dataclass
class TrialView:
    """What the controller knows of one running trial, from its events."""

    id: str
    worker: Optional[str] = None
    budget_sec: float = math.inf
    metric: str = "validation metric"
    target: float = math.nan
    higher_is_better: bool = True
    step: int = 0
    submission_time: float = 0.0
    latest: Optional[float] = None
    reached: bool = False
    points: List[Tuple[float, float]] = dataclasses.field(default_factory=list)

    def apply(self, event: Dict[str, Any]) -> None:
        for name in ("worker", "budget_sec", "metric", "target", "higher_is_better", "step", "submission_time"):
            if event.get(name) is not None:
                setattr(self, name, event[name])
        if event.get("event") == "eval":
            self.reached = self.reached or bool(event.get("reached"))
            value = event.get("validation_metric")
            if value is not None:
                self.latest = float(value)
                self.points.append((self.submission_time, self.latest))

    def assessment(self) -> Assessment:
        return assess(self.points, self.target, self.higher_is_better, self.budget_sec, self.reached)

    @property
    def comparison(self) -> str:
        return ">" if self.higher_is_better else "<"


# --- text ----------------------------------------------------------------------------------------


def _who(trial_id: str, worker: Optional[str]) -> str:
    return f"[{worker}] {trial_id}" if worker else trial_id


def eval_line(view: TrialView) -> str:
    """One eval, as a line of a log: `algoperf: [gw0] mnist-study0-trial1 step 40: ...`."""
    latest = "no value" if view.latest is None else f"{view.latest:.4f}"
    assessment = view.assessment()
    detail = f" ({assessment.detail})" if assessment.detail else ""
    return (f"{PREFIX} {_who(view.id, view.worker)} step {view.step}: {view.submission_time:,.1f} s of "
            f"{view.budget_sec:,.0f} s budget, {view.metric} {latest} (target {view.comparison} {view.target:g}), "
            f"{assessment.state}{detail}")


def live_text(views: Iterable[TrialView]) -> str:
    """Every running trial in one short status, for the in-place display (ASCII: one char, one column)."""
    parts = []
    for view in views:
        latest = "-" if view.latest is None else f"{view.latest:.4f}"
        parts.append(f"{_who(view.id, view.worker)} {view.assessment().state} step {view.step} "
                     f"{view.submission_time:,.0f}/{view.budget_sec:,.0f}s {view.metric.rpartition('/')[2]} {latest}/{view.target:g}")
    return " | ".join(parts)


def finished_line(record: Dict[str, Any], worker: Optional[str] = None) -> str:
    """A finished trial, from the record its item reports (a reused one included)."""
    status = record["status"]
    if status == "reached" and record.get("time_to_target") is not None:
        status = f"reached at {record['time_to_target']:,.1f} s"
    best = record.get("best_validation_metric")
    comparison = ">" if record.get("higher_is_better", True) else "<"
    reused = " (reused result)" if record.get("reused") else ""
    return (f"{PREFIX} {_who(record['id'], worker)} finished{reused}: {status}, {record['steps']} steps, "
            f"{record['submission_time']:,.1f} s of {record['budget_sec']:,.0f} s budget, best validation/"
            f"{record['target_metric']} {'-' if best is None else f'{best:.4f}'} (target {comparison} "
            f"{record['validation_target']:g}), {record['stop_reason']}")


# --- delivery: workers' files, the controller's tail --------------------------------------------


class EventFile:
    """A worker's events, appended as JSON lines (opened per event: nothing stays open, nothing is lost)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, event: Dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(event, default=float) + "\n")


class EventTail:
    """Reads what the workers appended since the last read; a line still being written waits."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: Dict[Path, int] = {}
        self._partial: Dict[Path, bytes] = {}

    def read(self) -> List[Dict[str, Any]]:
        events = []
        for path in sorted(self.directory.glob("*.jsonl")):
            with open(path, "rb") as file:
                file.seek(self._offsets.get(path, 0))
                data = file.read()
            self._offsets[path] = self._offsets.get(path, 0) + len(data)
            *lines, self._partial[path] = (self._partial.get(path, b"") + data).split(b"\n")
            for line in lines:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events


def trial_listener(config: pytest.Config, session: Any, trial: Any, workload: Any, budget_sec: float) -> Optional[Listener]:
    """The listener `run_trial` tells of this trial's progress; None where nothing would show it."""
    if not reports_progress(session):
        return None
    directory = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if directory is not None:
        worker = config.workerinput.get("workerid")
        deliver: Listener = EventFile(Path(directory) / f"{worker}.jsonl")
    else:
        display = config.pluginmanager.get_plugin(PLUGIN_NAME)
        if display is None or not display.active:
            return None
        worker, deliver = None, display.receive_in_test
    facts = {"id": trial.id, "worker": worker, "budget_sec": budget_sec, "metric": f"validation/{workload.target_metric_name}",
             "target": workload.validation_target_value, "higher_is_better": workload.higher_is_better}

    def listen(event: Dict[str, Any]) -> None:
        deliver({**facts, **event} if event.get("event") == "start" else {"id": trial.id, "worker": worker, **event})

    return listen


# --- the controller's display --------------------------------------------------------------------


def _trial_id(nodeid: str) -> str:
    return nodeid.rpartition("[")[2].rstrip("]")


def _record(report: pytest.TestReport) -> Optional[Dict[str, Any]]:
    from pytest_algoperf.session import RECORD_PROPERTY

    return next((value for name, value in report.user_properties if name == RECORD_PROPERTY), None)


class ProgressDisplay:
    """Registered on the process that reports (controller, writer rank) of a time-to-target session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.requested = requested_mode()
        self._mode: Optional[str] = None
        self.views: Dict[str, TrialView] = {}
        self.lock = threading.RLock()
        self.drawn = False
        self.directory: Optional[Path] = None
        self.tail: Optional[EventTail] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def mode(self) -> str:
        if self._mode is None:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            self._mode = "off" if reporter is None else choose_mode(self.requested, self.config.get_verbosity(), bool(reporter.isatty))
        return self._mode

    @property
    def active(self) -> bool:
        return self.mode != "off"

    @property
    def writer(self):
        return self.config.get_terminal_writer()

    # events ------------------------------------------------------------------------------------

    def receive_in_test(self, event: Dict[str, Any]) -> None:
        """An in-process trial's event, while pytest captures the test's output: shown past the capture."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with self.lock:
            if capture is None:
                self._show([event])
            else:
                with capture.global_and_fixture_disabled():
                    self._show([event])

    def _show(self, events: Sequence[Dict[str, Any]]) -> None:
        for event in events:
            view = self.views.setdefault(event["id"], TrialView(event["id"]))
            view.apply(event)
            if event.get("event") == "end":
                del self.views[event["id"]]
            elif event.get("event") == "eval" and self.mode == "lines":
                self._write_line(eval_line(view))
        if events:
            self._draw()

    def _drain(self) -> None:
        if self.tail is not None:
            self._show(self.tail.read())

    def _watch(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_SEC):
            try:
                with self.lock:
                    self._drain()
            except Exception:  # a display problem must never end the session
                continue

    # the terminal -------------------------------------------------------------------------------

    def _write_line(self, text: str) -> None:
        self._erase()
        writer = self.writer
        if writer.width_of_current_line:
            writer.line()
        writer.line(text)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.currentfspath = None  # pytest's next output starts a line of its own
        writer.flush()

    def _draw(self) -> None:
        """The live status, right of pytest's cursor, the cursor moved back where pytest left it."""
        self._erase()
        if self.mode != "live" or not self.views:
            return
        writer = self.writer
        room = writer.fullwidth - writer.width_of_current_line - 2
        if room < 20:
            return
        text = live_text(self.views.values())[:room]
        writer.write_raw(f"\x1b[K {text}\x1b[{len(text) + 1}D", flush=True)
        self.drawn = True

    def _erase(self) -> None:
        if self.drawn:
            self.writer.write_raw("\x1b[K", flush=True)
            self.drawn = False

    def _around_output(self, before: Callable[[], None] = lambda: None):
        """Runs a pytest hook that prints with the live status erased, redrawn afterwards."""
        with self.lock:
            try:
                self._drain()
                self._erase()
                before()
            except Exception:
                pass
            try:
                return (yield)
            finally:
                try:
                    self._draw()
                except Exception:
                    pass

    # hooks ----------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """xdist, on the controller, before a worker starts: where it writes its events."""
        if not self.active or not node.gateway.spec.popen:  # a remote worker could not reach the folder
            return
        with self.lock:
            if self.directory is None:
                self.directory = Path(tempfile.mkdtemp(prefix="algoperf-progress-"))
                self.tail = EventTail(self.directory)
                self._thread = threading.Thread(target=self._watch, name="algoperf-progress", daemon=True)
                self._thread.start()
        node.workerinput[WORKERINPUT_KEY] = str(self.directory)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self, nodeid, location):
        if not self.active:
            return (yield)
        return (yield from self._around_output())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        if not self.active:
            return (yield)
        with self.lock:
            self.views.pop(_trial_id(nodeid), None)  # ended without an end event (a crash): off the display
        return (yield from self._around_output())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport):
        if not self.active:
            return (yield)

        def finished() -> None:
            record = _record(report) if report.when == "call" else None
            if record is not None and self.mode in ("lines", "trials"):
                node = getattr(report, "node", None)
                self._write_line(finished_line(record, node.gateway.id if node is not None else None))

        return (yield from self._around_output(finished))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self):
        """Before pytest's summary: the last events, the status erased, the workers' folder removed."""
        with self.lock:
            try:
                self._stop.set()
                if self.active:
                    self._drain()
                    self._erase()
            except Exception:
                pass
            self.views.clear()
            self._mode = "off"
        if self._thread is not None:
            self._thread.join(timeout=2 * POLL_INTERVAL_SEC)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        return (yield)
