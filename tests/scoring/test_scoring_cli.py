"""``python -m scoring`` run as a user would, through a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = ("criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit", "librispeech_conformer",
        "librispeech_deepspeech", "ogbg", "wmt")


def run_cli(*args, cwd=REPO_ROOT):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "scoring", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def two_submissions(log_tree):
    """'fast' reaches every base workload at eval 1 (200 s), 'slow' half of them at eval 4 (500 s)
    and the others never."""
    for study in range(3):
        for workload in BASE:
            log_tree.times_trial("fast", study, workload, 1, reach_at=1)
            reach = 4 if workload in BASE[:4] else None
            log_tree.times_trial("slow", study, workload, 1, reach_at=reach)
    return log_tree.root


def test_help_explains_usage():
    result = run_cli("--help")
    assert result.returncode == 0
    for words in ("LOGDIR", "--version", "v0.5", "--self-tuning", "--output", "--strict",
                  "performance profile", "study_<s>/<workload>_<framework>/trial_<k>"):
        assert words in result.stdout, words


def test_scores_a_ruleset_dir_and_writes_outputs(two_submissions, tmp_path):
    output = tmp_path / "out"
    result = run_cli(two_submissions, "--output", output, "--speedup-base", "slow")
    assert result.returncode == 0, result.stderr
    assert "Leaderboard" in result.stdout
    board = pd.read_csv(output / "leaderboard.csv")
    assert board["submission"].tolist() == ["fast", "slow"]
    # "slow" takes 2.5x as long on half the base workloads: rho = 1/2 from tau = 2.5 on, which
    # falls midway between the 50th and 51st tau points: 0.5 * 49.5 intervals of 3/99, over 3.
    assert board["score"].tolist() == pytest.approx([1.0, 0.25])
    assert board["base workloads credited"].tolist() == [8, 4]
    assert board["speedup_vs_slow"][1] == 1.0 and board["speedup_vs_slow"][0] < 1
    times = pd.read_csv(output / "time_to_targets.csv", index_col="submission")
    assert times.loc["fast", "ogbg"] == 200.0 and times.loc["slow", "ogbg"] == float("inf")
    per_study = pd.read_csv(output / "time_to_targets_per_study.csv")
    assert len(per_study) == 2 * 8 * 3
    summary = pd.read_csv(output / "fast_summary.csv")
    assert len(summary) == 8 * 3 and summary["val target reached"].all()
    for plot in ("performance_profiles.png", "performance_profiles.pdf"):
        assert (output / plot).stat().st_size > 5000, plot
    assert (output / "performance_profiles.png").read_bytes()[:4] == b"\x89PNG"
    assert (output / "performance_profiles.pdf").read_bytes()[:4] == b"%PDF"


def test_a_single_submission_dir_and_several_logdirs(two_submissions):
    result = run_cli(two_submissions / "fast", two_submissions / "slow", "--version", "v0.6")
    assert result.returncode == 0, result.stderr
    assert "fast: time to target" in result.stdout and "slow: time to target" in result.stdout


def test_strict_exits_with_1_and_lists_the_problems(two_submissions):
    result = run_cli(two_submissions, "--strict")
    assert result.returncode == 1
    assert "1 trials read, v0.6 requires 5" in result.stderr


def test_bad_command_lines_exit_with_2(two_submissions, tmp_path):
    assert run_cli(two_submissions, "--version", "v9").returncode == 2
    assert "choose one of" in run_cli(two_submissions, "--version", "v9").stderr
    assert run_cli(two_submissions, "--speedup-base", "nobody").returncode == 2
    missing = run_cli(tmp_path / "absent")
    assert missing.returncode == 1 and "not a directory" in missing.stderr
