"""Bad logs are reported with their paths, not fatal; --strict makes them errors."""

import math

import pytest

from scoring import ScoringError, score_log_dirs

NAN = float("nan")


@pytest.fixture
def damaged_tree(log_tree):
    """One good ogbg trial plus one of each kind of damage."""
    root = log_tree.root
    log_tree.times_trial("sub", 0, "ogbg", 1, reach_at=1)
    (root / "sub/study_0/ogbg_pytorch/trial_2").mkdir(parents=True)  # no CSV
    truncated = log_tree.times_trial("sub", 0, "ogbg", 3, reach_at=1)
    truncated.write_text(truncated.read_text()[:-12])
    log_tree.trial("sub", 0, "ogbg", 4, metric=[NAN, NAN])
    log_tree.trial("sub", 0, "ogbg", 5, metric=[0.3],
                   drop_columns=["validation/mean_average_precision"])
    unknown = root / "sub/study_0/resnet_jax/trial_1"
    unknown.mkdir(parents=True)
    (unknown / "eval_measurements.csv").write_text("score,validation/accuracy\n1.0,0.9\n")
    (root / "sub/study_0/notes").mkdir()
    (root / "sub/study_0/trial_9").mkdir()  # a stray trial outside a workload directory
    (root / "sub/plots").mkdir()
    empty = root / "sub/study_1/wmt_jax/trial_1/eval_measurements.csv"
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    return root / "sub"


EXPECTED = [
    ("study_0/ogbg_pytorch/trial_2/eval_measurements.csv", "missing"),
    ("study_0/ogbg_pytorch/trial_3/eval_measurements.csv", "truncated"),
    ("study_0/ogbg_pytorch/trial_4/eval_measurements.csv",
     "validation/mean_average_precision is NaN in every eval"),
    ("study_0/ogbg_pytorch/trial_5/eval_measurements.csv",
     "no validation/mean_average_precision column"),
    ("study_0/resnet_jax", "unknown workload 'resnet'"),
    ("study_0/notes", "not a <workload>_jax or <workload>_pytorch directory"),
    ("study_0/trial_9", "not a <workload>_jax or <workload>_pytorch directory"),
    ("sub/plots", "not a study_<s> directory"),
    ("study_1/wmt_jax/trial_1/eval_measurements.csv", "empty file"),
]


def test_each_problem_is_a_warning_naming_its_path(damaged_tree):
    result = score_log_dirs({"sub": damaged_tree}, version="v0.6")
    for where, what in EXPECTED:
        assert any(f"{where}: {what}" in w for w in result.warnings), (where, result.warnings)
    assert len(result.warnings) == len(EXPECTED)
    # The good trial still counts; the damaged ones simply do not reach the target.
    assert result.time_to_target.loc["sub", "ogbg"] == 200.0
    text = result.format_text()
    assert f"Warnings ({len(EXPECTED)}):" in text
    assert all(where in text for where, _ in EXPECTED)


def test_strict_mode_raises_one_error_listing_every_problem(damaged_tree):
    with pytest.raises(ScoringError) as error:
        score_log_dirs({"sub": damaged_tree}, version="v0.6", strict=True)
    message = str(error.value)
    assert all(where in message for where, _ in EXPECTED)
    # ... and the counts the version requires.
    assert "sub: no logs for scored workload criteo1tb" in message
    assert "sub/ogbg: 1 studies, v0.6 requires 3" in message
    assert "sub/study_0/ogbg: 4 trials read, v0.6 requires 5" in message


def test_strict_mode_checks_counts_against_the_version(log_tree):
    for workload in ("criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit",
                     "librispeech_conformer", "librispeech_deepspeech", "ogbg", "wmt"):
        for study in range(3):
            log_tree.times_trial("sub", study, workload, 1, reach_at=0)
    result = score_log_dirs({"sub": log_tree.root / "sub"}, version="v0.6", strict=True,
                            self_tuning=True)
    assert result.scores["sub"] == pytest.approx(1.0)
    with pytest.raises(ScoringError, match="1 trials read, v0.6 requires 5"):
        score_log_dirs({"sub": log_tree.root / "sub"}, version="v0.6", strict=True)
    with pytest.raises(ScoringError, match="3 studies, v0.5 requires 5"):
        score_log_dirs({"sub": log_tree.root / "sub"}, version="v0.5", strict=True,
                       self_tuning=True)


def test_a_missing_score_column_leaves_the_time_unknown(log_tree):
    log_tree.trial("sub", 0, "ogbg", 1, metric=[0.3], drop_columns=["score"])
    result = score_log_dirs({"sub": log_tree.root / "sub"}, version="v0.6")
    assert any("no 'score' column" in w for w in result.warnings)
    assert math.isnan(result.time_to_target.loc["sub", "ogbg"])
