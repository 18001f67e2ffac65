"""The AlgoPerf section of a pytest-html report: `pytest --html=report.html --algoperf-submission=...`.

Active only when pytest-html is installed and `--html` is given: pytest-html's hooks live on a
plugin object registered only then, and pytest_html is imported only inside them, so the plugin
works the same without pytest-html.

What the report gains in a time-to-target session:

* above the results table, an "AlgoPerf" section: the time-to-target table (per workload and
  study, the median over studies, its bootstrap interval where scoring computed one), the
  benchmark score (its interval too) and the performance-profile plot, and each workload's
  learning curves (with `--algoperf-compare`, also beside the references');
* in the results table, three columns per item: the trial's status, its time to target and its
  stop reason; in the item's details, its learning curve and its result record.

The report is written self-contained whenever an AlgoPerf session is on (as `--self-contained-html`
writes it: styles and images inside the one HTML file, images as data URIs), so it can be mailed
or archived as one file; the report header says so. Under torchrun only rank 0 writes it.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pytest_algoperf import learning_curve_hooks
from pytest_algoperf.session import BenchmarkSession

PLUGIN_NAME = "algoperf-html"
SECTION_ID = "algoperf"
COLUMNS = (("status", "AlgoPerf status"), ("time-to-target", "Time to target (s)"), ("stop-reason", "Stop reason"))
# Inserted after pytest-html's Result and Test columns.
COLUMN_POSITION = 2
STYLE = """
#algoperf { color: black; margin: 10px 0 20px; }
#algoperf h3 { font-size: 14px; margin: 14px 0 6px; }
#algoperf table td, #algoperf table th { border: 1px solid #e6e6e6; padding: 4px 8px; text-align: right; }
#algoperf table th { background: #f6f6f6; }
#algoperf table td:first-child, #algoperf table th:first-child { text-align: left; }
#algoperf tr.median td { font-weight: bold; }
#algoperf figure { display: inline-block; margin: 6px 12px 6px 0; vertical-align: top; }
#algoperf figure img { max-width: 100%; border: 1px solid #e6e6e6; }
#algoperf #algoperf-profile img { width: 860px; }
#algoperf figcaption { color: #555; }
#algoperf .algoperf-note { color: #555; }
.algoperf-record td { padding: 2px 8px; border: 1px solid #e6e6e6; color: black; }
div.media { width: 480px; height: 330px; }
.media-container { height: 290px; }
"""


def _html_is_on(config: pytest.Config) -> bool:
    """pytest-html is installed, enabled and asked for a report."""
    return config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))


def _algoperf_is_on(config: pytest.Config) -> bool:
    from pytest_algoperf import options

    try:
        return options.read_settings(config).enabled
    except pytest.UsageError:
        return False  # the plugin reports the problem itself


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Before pytest-html's own pytest_configure reads its options.
    if not _html_is_on(config) or not _algoperf_is_on(config):
        return
    from pytest_algoperf.distributed import session_ranks

    if not session_ranks().is_writer:
        config.option.htmlpath = None  # one report per session, from the rank that writes the results
        return
    made_self_contained = not config.getoption("self_contained_html", False)
    config.option.self_contained_html = True
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(AlgoPerfHtml(config, made_self_contained), PLUGIN_NAME)


class AlgoPerfHtml:
    """pytest-html's hooks for a session with an AlgoPerf submission; registered only when pytest-html writes a report."""

    def __init__(self, config: pytest.Config, made_self_contained: bool) -> None:
        self.config = config
        self.made_self_contained = made_self_contained

    @property
    def session(self) -> Optional[BenchmarkSession]:
        # Looked up when needed: the benchmark session is made after this plugin is registered.
        return learning_curve_hooks.time_to_target_session(self.config)

    def pytest_report_header(self) -> List[str]:
        if self.made_self_contained:
            return ["algoperf: the --html report is written self-contained (styles and plots embedded, as with --self-contained-html)"]
        return []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Attach the item's learning curve and record to its call report, before pytest-html reads it."""
        session = self.session
        if report.when != "call" or session is None:
            return
        record = learning_curve_hooks.trial_record(report.user_properties)
        if record is None:
            return
        from pytest_html import extras

        added = [extras.html(_record_html(record))]
        curve = learning_curve_hooks.trial_plot_path(session, record)
        if curve.is_file():
            added.insert(0, extras.png(_base64(curve), name=f"learning curve of {record['id']}"))
        report.extras = list(getattr(report, "extras", [])) + added

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: List[str]) -> None:
        if self.session is None:
            return
        for offset, (name, title) in enumerate(COLUMNS):
            cells.insert(COLUMN_POSITION + offset, f'<th class="algoperf-{name}">{title}</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: List[str]) -> None:
        if self.session is None:
            return
        record = learning_curve_hooks.trial_record(getattr(report, "user_properties", ()))
        values = ("", "", "") if record is None else (record["status"], _seconds(record["time_to_target"], missing="inf"), record["stop_reason"])
        for offset, ((name, _title), value) in enumerate(zip(COLUMNS, values)):
            cells.insert(COLUMN_POSITION + offset, f'<td class="algoperf-{name}">{_e(value)}</td>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: List[str], summary: List[str], postfix: List[str], session: pytest.Session) -> None:
        benchmark = self.session
        reporter = self.config.pluginmanager.get_plugin("algoperf-reporter")
        if benchmark is None or reporter is None or not benchmark.records:
            return
        try:
            rows, result = reporter.scoring()
            section = section_html(benchmark, rows, result)
        except Exception as error:  # the rest of the report is still worth writing
            section = (f'<section id="{SECTION_ID}"><h2>AlgoPerf</h2><p>The AlgoPerf section could not be made: '
                       f"{_e(type(error).__name__)}: {_e(error)}</p></section>")
        postfix.append(section)


def section_html(session: BenchmarkSession, rows: List[Dict[str, Any]], result) -> str:
    """The section's HTML: time-to-target table, score, performance profile, learning curves."""
    settings = session.settings
    parts = [
        f"<style>{STYLE}</style>",
        f'<section id="{SECTION_ID}">',
        "<h2>AlgoPerf</h2>",
        f"<p>experiment <b>{_e(session.experiment)}</b>: {_e(settings.ruleset)} tuning, benchmark "
        f"{_e(settings.benchmark_version)}; result logs in <code>{_e(session.experiment_dir)}</code></p>",
        '<h3>Time to target</h3>',
        _time_table(session, rows, result),
        '<h3>Benchmark score</h3>',
        score_section(result),
        _curves_html(session),
        "</section>",
    ]
    return "\n".join(parts)


def _time_table(session: BenchmarkSession, rows: List[Dict[str, Any]], result) -> str:
    records = {record["workload"]: record for record in session.records.values()}
    intervals = time_intervals(result, session.experiment)
    head = ["", "time to target (s)", "trial", "steps", "reached", "diverged", "status", *([_interval_title(result)] if intervals else [])]
    body = []
    for workload in sorted({row["workload"] for row in rows}):
        record = records[workload]
        comparison = ">" if record["higher_is_better"] else "<"
        body.append(f'<tr class="workload"><td colspan="{len(head)}">{_e(workload)}: validation/{_e(record["target_metric"])} '
                    f'{comparison} {record["validation_target"]} within {record["budget_sec"]:.0f} s</td></tr>')
        for row in (row for row in rows if row["workload"] == workload):
            cells = [f"study {row['study']}", _seconds(row["time_to_target_s"]), _dash(row["trial"]), _dash(row["steps"]),
                     row["trials_reached"], row["trials_diverged"], row["status"]] + [""] * (len(head) - 7)
            body.append("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in cells) + "</tr>")
        times = result.time_to_target
        median = times.loc[session.experiment, workload] if workload in times and session.experiment in times.index else math.inf
        cells = ["median", _seconds(median), "", "", "", "", ""] + ([intervals.get(workload, "-")] if intervals else [])
        body.append('<tr class="median">' + "".join(f"<td>{_e(cell)}</td>" for cell in cells) + "</tr>")
    return ('<table id="algoperf-time-to-target"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def score_section(result) -> str:
    board = result.leaderboard()
    if board.empty:
        base = ", ".join(result.version.base_workloads)
        return (f'<p id="algoperf-score" class="algoperf-note">No benchmark score: none of the benchmark '
                f'{_e(result.version.name)} base workloads ({_e(base)}) has logs in this comparison; '
                "development workloads are never scored.</p>")
    intervals = _score_intervals(result)
    head = ["rank", "submission", "score", *([_interval_title(result)] if intervals else []), "base workloads credited"]
    body = []
    for row in board.to_dict("records"):
        cells = [row["rank"], row["submission"], f"{row['score']:.4f}",
                 *([intervals.get(row["submission"], "-")] if intervals else []), row["base workloads credited"]]
        body.append("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in cells) + "</tr>")
    parts = ['<table id="algoperf-score"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>"]
    if not result.performance_profiles.empty:
        parts.append(_figure(_profile_png(result), "algoperf-profile",
                             "performance profiles: the fraction of base workloads each submission reaches within "
                             "tau times the fastest time; the score is the area under its profile"))
    return "\n".join(parts)


def _curves_html(session: BenchmarkSession) -> str:
    directory = learning_curve_hooks.session_plot_dir(session)
    figures = []
    for workload in sorted({record["workload"] for record in session.records.values()}):
        for suffix, caption in (("", "every trial, one colour per study"), ("_compare", "this run beside each reference")):
            path = directory / f"{workload}{suffix}.png"
            if path.is_file():
                figures.append(_figure(path.read_bytes(), f"algoperf-curves-{workload}{suffix}",
                                       f"{workload}: {caption} ({path.name})"))
    if not figures:
        return ""
    return '<h3>Learning curves</h3>\n<p class="algoperf-note">validation (solid) and train (dashed) target metric ' \
           "against accumulated submission time; stars mark each trial's time to target</p>\n" + "\n".join(figures)


def _profile_png(result) -> bytes:
    from scoring.plots import plot_performance_profiles

    with tempfile.TemporaryDirectory() as scratch:
        title = f"AlgoPerf {result.version.name}, {result.ruleset}"
        written = plot_performance_profiles(result.performance_profiles, result.scores, Path(scratch) / "performance_profiles", title)
        return next(path for path in written if path.suffix == ".png").read_bytes()


# --- intervals (present when scoring computed bootstrap intervals) ---------------------------------------


def _intervals(result):
    return getattr(result, "intervals", None)


def _interval_title(result) -> str:
    intervals = _intervals(result)
    confidence = getattr(getattr(intervals, "settings", None), "confidence", None)
    if intervals is None:
        return ""
    return f"{confidence:.0%} interval" if confidence is not None else "interval"


def time_intervals(result, submission: str) -> Dict[str, str]:
    table = getattr(_intervals(result), "time_to_target", None)
    if table is None or getattr(table, "empty", True):
        return {}
    mine = table[table["submission"].astype(str) == submission]
    return {str(row.workload): f"[{_seconds(row.low)}, {_seconds(row.high)}]" for row in mine.itertuples(index=False)}


def _score_intervals(result) -> Dict[str, str]:
    table = getattr(_intervals(result), "scores", None)
    if table is None or getattr(table, "empty", True):
        return {}
    return {str(row.submission): f"[{row.low:.4f}, {row.high:.4f}]" for row in table.itertuples(index=False)}


# --- small pieces ------------------------------------------------------------------------------------


def _record_html(record: Dict[str, Any]) -> str:
    from pytest_algoperf.item_properties import PREFIX, flat_properties

    rows = "".join(f"<tr><td>{_e(name[len(PREFIX):].replace('_', ' '))}</td><td>{_e(value)}</td></tr>"
                   for name, value in flat_properties(record))
    return f'<table class="algoperf-record">{rows}</table>'


def _figure(png: bytes, element_id: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{_e(element_id)}"><img alt="{_e(caption)}" src="data:image/png;base64,{data}"/>'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _seconds(value: Any, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    value = float(value)
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _dash(value: Any) -> Any:
    return "-" if value is None else value


def _e(value: Any) -> str:
    return html.escape(str(value))
