"""The AlgoPerf section of a pytest-html report, rendered in a headless browser; and sessions without pytest-html."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_algoperf import html_report
from scoring import score_log_dirs
from test_plugin import _mnist_args, _run

CHROMIUM = "chromium-headless-shell"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MNIST_REFERENCE = (
    "global_step,score,train/accuracy,validation/accuracy,test/accuracy\n"
    "1,0.5,0.1,0.1,0.1\n900,1.5,0.95,0.93,0.93\n2000,3.0,0.99,0.975,0.975\n"
)
# A base workload (and, for v0.5's held-out rule, its held-out variant) that the reference reaches,
# so the comparison has a benchmark score and a performance profile.
OGBG_REFERENCE = (
    "global_step,score,train/mean_average_precision,validation/mean_average_precision,test/mean_average_precision\n"
    "1,10,0.02,0.02,0.02\n20000,3000,0.25,0.24,0.23\n40000,6000,0.31,0.29,0.28\n"
)


def _reference(root: Path) -> Path:
    for workload, log in (("mnist", MNIST_REFERENCE), ("ogbg", OGBG_REFERENCE), ("ogbg_model_size", OGBG_REFERENCE)):
        trial = root / "study_0" / f"{workload}_pytorch" / "trial_1"
        trial.mkdir(parents=True)
        (trial / "eval_measurements.csv").write_text(log)
    return root


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--no-sandbox", *args], capture_output=True, text=True, timeout=120)


def test_the_report_has_the_algoperf_section_and_each_items_curve(pytester, mnist_data_dir, tmp_path):
    report = tmp_path / "report.html"
    results = tmp_path / "results"
    reference = _reference(tmp_path / "reference")
    # v0.5 checks the budget at every step, so a tiny budget ends each trial within a second or two.
    result = _run(pytester, f"--html={report}", *_mnist_args(
        mnist_data_dir, results, f"--algoperf-compare={reference}", "--algoperf-benchmark-version=v0.5",
        "--algoperf-studies=2", "--algoperf-trials=1", "--algoperf-budget-scale=0.02"))
    result.assert_outcomes(failed=2)  # a 1.2 s budget is far too short for the target
    result.stdout.fnmatch_lines(["algoperf: the --html report is written self-contained*"])

    # One self-contained file: styles inline, every image a data URI, nothing written beside it.
    text = report.read_text()
    assert not (tmp_path / "assets").exists()
    assert '<link href="assets' not in text and re.search(r'src="(?!data:)[^"]+\.png', text) is None

    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium-headless-shell); the report's rendering is not checked")
    # The page's JavaScript builds the results table from its data; "?collapsed=" opens every row's details.
    url = report.as_uri() + "?collapsed="
    dom = _chromium("--dump-dom", "--virtual-time-budget=5000", url).stdout
    section = dom[dom.index('<section id="algoperf">'):dom.index("</section>")]
    assert "<h2>AlgoPerf</h2>" in section
    assert 'id="algoperf-time-to-target"' in section and "mnist: validation/accuracy &gt; 0.97 within 1 s" in section
    assert re.search(r"<td>study 1</td><td>inf</td>.*?<td>not reached</td>", section)
    score = section[section.index('<table id="algoperf-score">'):]
    assert "<td>1</td><td>reference</td><td>0.1250</td>" in score and "<td>2</td><td>nadamw</td><td>0.0000</td>" in score
    assert re.search(r'<figure id="algoperf-profile"><img [^>]*src="data:image/png;base64,', section)
    for figure in ("algoperf-curves-mnist", "algoperf-curves-mnist_compare"):
        assert re.search(rf'<figure id="{figure}"><img [^>]*src="data:image/png;base64,', section)
    table = dom[dom.index('<table id="results-table"'):]
    assert re.search(r'<th class="algoperf-status">AlgoPerf status</th>\s*<th class="algoperf-time-to-target">'
                     r'Time to target \(s\)</th>\s*<th class="algoperf-stop-reason">Stop reason</th>', table)
    for study in (0, 1):
        row = table[table.index(f"test_time_to_target[mnist-study{study}-trial1]"):]
        row = row[:row.find('class="results-table-row"')]  # up to the next item's rows
        assert re.search(r'<td class="algoperf-status">not reached</td>\s*<td class="algoperf-time-to-target">inf</td>'
                         r'\s*<td class="algoperf-stop-reason">budget exhausted</td>', row)
        assert re.search(r'<img src="data:image/png;base64,[^"]+"', row)  # the media viewer shows its learning curve
        assert f"learning curve of mnist-study{study}-trial1" in row
        assert "<td>stop reason</td><td>budget exhausted</td>" in row  # the record, in the row's details

    screenshot = tmp_path / "report.png"
    _chromium(f"--screenshot={screenshot}", "--window-size=1400,3000", "--virtual-time-budget=5000", url)
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE


def test_a_session_without_pytest_html_installed_runs_as_before(pytester, mnist_data_dir, tmp_path, monkeypatch):
    # No plugin autoloading (pytest-html's entry point stays unloaded) and `import pytest_html` fails.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setitem(sys.modules, "pytest_html", None)
    results = tmp_path / "results"
    result = _run(pytester, "-p", "pytest_algoperf.plugin", *_mnist_args(mnist_data_dir, results, "--algoperf-studies=1",
                                                                          "--algoperf-trials=1", "--algoperf-max-steps=2"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*AlgoPerf time to target*", "learning curves: mnist.png in *"])
    assert (results / "nadamw-max-steps-2" / "study_0" / "mnist_pytorch" / "trial_1" / "learning_curve.png").is_file()


def test_a_report_without_an_algoperf_session_is_left_as_pytest_html_makes_it(pytester, tmp_path):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    report = tmp_path / "plain.html"
    result = _run(pytester, f"--html={report}")
    result.assert_outcomes(passed=1)
    text = report.read_text()
    assert 'id="algoperf"' not in text and "AlgoPerf status" not in text
    assert (tmp_path / "assets" / "style.css").is_file()  # not made self-contained: no AlgoPerf session


def test_the_score_shows_its_bootstrap_interval_when_scoring_has_one(tmp_path):
    for submission, times in (("fast", (100.0, 110.0, 120.0)), ("slow", (150.0, 200.0, 400.0))):
        for study, time in enumerate(times):
            trial = tmp_path / submission / f"study_{study}" / "ogbg_pytorch" / "trial_1"
            trial.mkdir(parents=True)
            (trial / "eval_measurements.csv").write_text(
                "global_step,score,validation/mean_average_precision,test/mean_average_precision\n"
                f"1,1,0.02,0.02\n100,{time},0.29,0.28\n")
    result = score_log_dirs({"fast": tmp_path / "fast", "slow": tmp_path / "slow"}, version="v0.6",
                            intervals=True, bootstrap_samples=50)
    section = html_report.score_section(result)
    assert "<th>95% interval</th>" in section
    low, high = result.intervals.scores.set_index("submission").loc["slow", ["low", "high"]]
    assert f"<td>[{low:.4f}, {high:.4f}]</td>" in section
    assert html_report.time_intervals(result, "slow")["ogbg"] == "[150.00, 400.00]"
