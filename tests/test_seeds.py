"""Seeds as official scoring draws them: one per (workload, study), shared by the study's trials by default."""

from __future__ import annotations

import json

from pytest_algoperf.run_plan import plan_trials
from pytest_algoperf.seeds import trial_seed


def test_trials_of_a_study_share_its_seed_by_default():
    plan = plan_trials(["mnist", "ogbg"], studies=2, hyperparameter_points=[1, 2, 3], num_trials=3, base_seed=0)
    by_study = {}
    for spec in plan:
        by_study.setdefault((spec.workload, spec.study), set()).add(spec.seed)
    assert all(len(study_seeds) == 1 for study_seeds in by_study.values())
    assert len(by_study) == 4 and len({next(iter(s)) for s in by_study.values()}) == 4  # studies and workloads differ


def test_per_trial_seeds_are_an_explicit_option():
    plan = plan_trials(["mnist"], studies=1, hyperparameter_points=[1, 2, 3], num_trials=3, base_seed=0, seed_scope="trial")
    assert len({spec.seed for spec in plan}) == 3
    assert trial_seed(0, "mnist", 0, 1, "trial") != trial_seed(0, "mnist", 0, 1, "study")


def test_the_seed_reaches_the_trial_files(pytester, mnist_data_dir, tmp_path, project_root):
    common = [f"--algoperf-submission={project_root / 'submissions' / 'nadamw'}", f"--algoperf-data-dir={mnist_data_dir}",
              "--algoperf-studies=1", "--algoperf-trials=2", "--algoperf-max-steps=1", "-k", "mnist", "-p", "no:cacheprovider"]
    for scope in ("study", "trial"):
        results = tmp_path / scope
        pytester.runpytest(*common, f"--algoperf-results-dir={results}", f"--algoperf-seeds={scope}").assert_outcomes(passed=2)
        flags = [json.loads(path.read_text()) for path in sorted(results.rglob("flags_0.json"))]
        assert [f["seeds"] for f in flags] == [scope, scope]
        assert (flags[0]["rng_seed"] == flags[1]["rng_seed"]) == (scope == "study")
