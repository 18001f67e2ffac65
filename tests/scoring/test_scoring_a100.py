"""The A100 benchmark version: nine base workloads, A100 budgets, and the rolling leaderboard's scores.

The leaderboard repository publishes, next to its A100 scores, the time-to-target table they come
from (mlcommons/submissions_algorithms, `results/time_to_targets.csv` and `results/scores.csv`).
Those tables are reproduced here twice: straight through the performance profile, and through log
trees written to reach each target at the published time, scored with `python -m scoring`.
"""

import math
import subprocess
import sys

import pandas as pd
import pytest

from scoring import load_version, score_log_dirs
from scoring.profiles import score_submissions
from scoring.versions import DEFAULT_VERSION

from conftest import LogTree

A100 = load_version("a100")
INF = math.inf
WORKLOADS = ("criteo1tb", "fastmri", "finewebedu_lm", "imagenet_resnet", "imagenet_vit",
             "librispeech_conformer", "librispeech_deepspeech", "ogbg", "wmt")

# results/time_to_targets.csv and results/scores.csv at commit 14f72357 (8 self-tuning submissions).
PUBLISHED_8 = {
    "schedule_free_adamw": ([10337.671689033508, 1188.9131379127502, INF, INF, INF, INF, 40463.388149023056, 3640.148542404175, 19957.71787595749], 0.5056116722783399),
    "schedule_free_adamw_v2": ([7480.571330547333, 1128.837876081467, INF, INF, INF, 55846.44081497192, 41911.17554831505, 6325.430662155151, 10325.45705485344], 0.6324354657687983),
    "cautious_nadamw": ([INF, 1608.188658952713, 25738.981688261032, INF, INF, INF, INF, 4992.686820983887, 14232.458706855774], 0.38383838383838315),
    "lion": ([INF, 1394.1750195026398, 23172.039316177368, INF, INF, INF, INF, 7223.987207174301, 15475.552730083466], 0.37037037037036963),
    "muon": ([INF, 1869.765276670456, 20594.037749767303, INF, 77162.91657114029, INF, INF, INF, INF], 0.301346801346801),
    "ademamix": ([7839.193164110184, 1517.7321906089785, 18025.89689064026, INF, INF, 48894.85426735878, INF, 6329.966245889664, 17399.639942407608], 0.5993265993265987),
    "nadamw": ([7492.6946766376495, 1800.7732002735138, 25733.847669363025, INF, 72015.5787293911, INF, INF, INF, INF], 0.4057239057239049),
    "nadamw_baselinev05": ([8206.103132247925, 1620.5153810977936, 20589.912857055664, INF, INF, INF, INF, 4089.775626659393, 14865.7885992527], 0.5089786756453433),
}
# The same files at commit bc898742, before muon and ademamix were added: every other score changes.
PUBLISHED_6_SCORES = {
    "schedule_free_adamw": 0.5056116722783399, "schedule_free_adamw_v2": 0.6374859708193034,
    "cautious_nadamw": 0.39057239057238985, "lion": 0.3759820426487086,
    "nadamw": 0.4124579124579117, "nadamw_baselinev05": 0.5140291806958482,
}


def _times(submissions) -> pd.DataFrame:
    return pd.DataFrame({name: dict(zip(WORKLOADS, PUBLISHED_8[name][0])) for name in submissions}).T


def test_the_a100_version_as_data():
    assert A100.base_workloads == ("criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit",
                                   "librispeech_conformer", "librispeech_deepspeech",
                                   "finewebedu_lm", "ogbg", "wmt")
    assert A100.num_base_workloads == 9 and A100.held_out_workloads == ()
    assert (A100.num_studies, A100.num_trials, A100.self_tuning_budget_factor) == (3, 5, 1.5)
    budgets = {name: (A100.target(name).max_allowed_runtime_sec, A100.target(name).eval_period_time_sec)
               for name in WORKLOADS}
    assert budgets == {
        "criteo1tb": (8915, 356), "fastmri": (2745, 110), "finewebedu_lm": (31967, 2571),
        "imagenet_resnet": (49918, 1996), "imagenet_vit": (64292, 2571),
        "librispeech_conformer": (43680, 1747), "librispeech_deepspeech": (36949, 1447),
        "ogbg": (11303, 452), "wmt": (16114, 644),
    }
    assert sum(budget for budget, _ in budgets.values()) == 265_883  # 73.9 h per study
    assert A100.budget_sec("finewebedu_lm", self_tuning=True) == 47_950.5
    lm = A100.target("finewebedu_lm")
    assert (lm.metric, lm.minimize, lm.validation_target, lm.test_target, lm.step_hint) == ("ppl", True, 22.2995, None, 72000)
    assert A100.runner["pytorch_tf32_matmul"] is True


def test_targets_and_step_hints_are_v06s_and_variants_inherit_the_a100_budgets():
    v06 = load_version("v0.6")
    for name, target in v06.workloads.items():
        a100 = A100.target(name)
        assert (a100.validation_target, a100.test_target, a100.step_hint, a100.metric) == (
            target.validation_target, target.test_target, target.step_hint, target.metric), name
    variant = A100.target("librispeech_deepspeech_tanh")
    assert (variant.max_allowed_runtime_sec, variant.eval_period_time_sec) == (36949, 1447)
    assert "finewebedu_lm" not in v06.workloads and DEFAULT_VERSION == "v0.6"


@pytest.mark.parametrize("submissions, expected", [
    (list(PUBLISHED_8), {name: score for name, (_, score) in PUBLISHED_8.items()}),
    (list(PUBLISHED_6_SCORES), PUBLISHED_6_SCORES),
], ids=["8-submissions", "6-submissions"])
def test_published_time_to_target_tables_give_the_published_scores(submissions, expected):
    _, _, scores = score_submissions(_times(submissions), A100)
    assert scores.to_dict() == pytest.approx(expected, abs=1e-12)


def test_a_worked_example_of_the_nine_workload_profile():
    # a reaches 8 of the 9 targets, each fastest (ratio 1); b reaches 3, each twice as slow as a
    # (ratio 2), and fails 6. The divisor is 9 however many workloads a submission ran.
    a = {name: 100.0 for name in WORKLOADS} | {"wmt": INF}
    b = {name: INF for name in WORKLOADS} | {"criteo1tb": 200.0, "fastmri": 200.0, "ogbg": 200.0}
    _, _, scores = score_submissions(pd.DataFrame({"a": a, "b": b}).T, A100)
    # a: the profile is 8/9 at every tau in [1, 4]. b: 0 below tau = 2, 3/9 from it on. On the
    # 100-point grid tau_k = 1 + 3k/99, tau_33 = 2, so of the 99 intervals 66 (k = 33..98) have 3/9
    # at both ends and one (k = 32) has it at one end: the normalised trapezoid is (3/9)(66 + 1/2)/99.
    assert scores["a"] == pytest.approx(8 / 9, abs=1e-12)
    assert scores["b"] == pytest.approx((3 / 9) * (66 + 0.5) / 99, abs=1e-12)


def _write_published_tree(root, submissions) -> None:
    """Self-tuning logs (3 studies x 1 trial): each study reaches the target at the published time
    (study 0 a little earlier, study 2 later, so the median over studies is the published value)."""
    tree = LogTree(root, version=A100)
    for name in submissions:
        for workload, seconds in zip(WORKLOADS, PUBLISHED_8[name][0]):
            for study, shift in enumerate((-50.0, 0.0, 75.0)):
                if math.isinf(seconds):
                    tree.trial(name, study, workload, 1, tree.curve(workload, None), [1000.0, 2000.0, 3000.0, 4000.0])
                else:
                    time = seconds + shift
                    tree.trial(name, study, workload, 1, tree.curve(workload, 2), [time / 3, time / 2, time, time + 500])


def test_published_scores_from_log_trees(tmp_path):
    _write_published_tree(tmp_path / "logs", PUBLISHED_8)
    result = score_log_dirs({name: tmp_path / "logs" / name for name in PUBLISHED_8}, version="a100", self_tuning=True)
    assert result.scores.to_dict() == pytest.approx({name: score for name, (_, score) in PUBLISHED_8.items()}, abs=1e-12)
    lm = result.time_to_target["finewebedu_lm"]
    assert lm["ademamix"] == pytest.approx(18025.89689064026) and math.isinf(lm["schedule_free_adamw"])


def test_ppl_is_lower_is_better_and_reaching_it_is_non_strict(tmp_path):
    tree = LogTree(tmp_path / "logs", version=A100)
    for study in range(3):
        # 22.2995 exactly reaches the target at the second eval; 22.3 does not.
        tree.trial("exact", study, "finewebedu_lm", 1, [40.0, 22.2995, 21.0], [100.0, 200.0, 300.0])
        tree.trial("above", study, "finewebedu_lm", 1, [40.0, 22.3, 30.0], [100.0, 200.0, 300.0])
    result = score_log_dirs({"exact": tmp_path / "logs" / "exact", "above": tmp_path / "logs" / "above"},
                            version="a100", self_tuning=True)
    assert result.time_to_target.loc["exact", "finewebedu_lm"] == 200.0
    assert math.isinf(result.time_to_target.loc["above", "finewebedu_lm"])


def test_the_cli_scores_the_a100_version(tmp_path):
    names = ["ademamix", "nadamw"]
    _write_published_tree(tmp_path / "logs", names)
    done = subprocess.run([sys.executable, "-m", "scoring", str(tmp_path / "logs"), "--version", "a100", "--self-tuning"],
                          capture_output=True, text=True, check=True)
    expected = score_submissions(_times(names), A100)[2]
    assert "benchmark a100, self-tuning ruleset" in done.stdout and "9 base workloads" in done.stdout
    # Leaderboard rows: rank, submission, score, workloads credited.
    rows = {line.split()[1]: float(line.split()[2]) for line in done.stdout.splitlines()
            if len(line.split()) == 4 and line.split()[0].isdigit()}
    assert rows == pytest.approx(dict(expected.round(4)), abs=1e-9), done.stdout
