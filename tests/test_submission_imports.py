"""How a submission's own imports resolve when it is loaded (see pytest_algoperf/submission_imports.py).

Scenarios that depend on the process's import state (`sys.modules`, `sys.meta_path`)
each run in a fresh interpreter whose working directory is an empty folder, so
neither the project root nor the submission tree is on `sys.path` by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable

import pytest

from pytest_algoperf.submission_imports import DISTRIBUTION_NAMES, OTHER_FRAMEWORKS, missing_package_message
from pytest_algoperf.submission_loading import SubmissionError, load_submission

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SELF_TUNING_BASELINE = PROJECT_ROOT / "submissions" / "nadamw_self_tuning"

# The four functions every submission must define, as no-ops.
REQUIRED_FUNCTIONS = '''

def get_batch_size(workload_name):
    return 1

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return None
'''

# Loading installs torch's compatibility names, which play no part in how imports
# resolve; skipping them keeps torch out of the child interpreters that do not need it.
SKIP_TORCH_COMPAT = "import pytest_algoperf.submission_loading as _loading; _loading.install_torch_compat = lambda: []\n"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def write_submission(folder: Path, source: str) -> Path:
    """`folder/submission.py` with `source` on top of no-op required functions."""
    return write(folder / "submission.py", textwrap.dedent(source) + REQUIRED_FUNCTIONS)


def run_python(code: str, tmp_path: Path, pythonpath: Iterable[Path] = (), torch_compat: bool = False) -> Any:
    """Runs `code` in a fresh interpreter; returns what it printed last, parsed as JSON."""
    cwd = tmp_path / "empty_cwd"
    cwd.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "")}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    prelude = "" if torch_compat else SKIP_TORCH_COMPAT
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"child interpreter failed (rc={result.returncode})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stdout.strip().splitlines()
    assert lines, f"child interpreter printed nothing\nstderr:\n{result.stderr}"
    return json.loads(lines[-1])


def load_and_probe(*folders: Path) -> str:
    """Code that loads each submission in turn, then reports `VALUE` and `probe()` of each, in load order."""
    return f"""
        import json
        from pytest_algoperf.submission_loading import load_submission
        loaded = [load_submission(path) for path in {[str(f) for f in folders]!r}]
        print(json.dumps([[s.module.VALUE, s.module.probe()] for s in loaded]))
    """


# --- relative imports ------------------------------------------------------------------------


def test_relative_imports_work_at_load_and_inside_functions(tmp_path):
    """`from .helpers import X` in a submission resolves against its folder, also when a function runs later."""
    folder = tmp_path / "relative_sub"
    write(folder / "helpers.py", "VALUE = 'helpers at load'\n")
    write(folder / "later.py", "VALUE = 'later in function'\n")
    write_submission(folder, """
        from .helpers import VALUE

        def probe():
            from .later import VALUE as later
            return later
    """)
    assert run_python(load_and_probe(folder), tmp_path) == [["helpers at load", "later in function"]]


# --- vendored top-level modules ----------------------------------------------------------------


@pytest.mark.parametrize("package_kind", ["regular", "namespace"])
def test_vendored_top_level_package_and_module_resolve(tmp_path, package_kind):
    """A package or module copied next to submission.py imports by its top-level name, at load and later."""
    folder = tmp_path / "vendoring_sub"
    if package_kind == "regular":
        write(folder / "optimizers" / "__init__.py")
    write(folder / "optimizers" / "adam.py", "NAME = 'adam'\n")
    write(folder / "optimizers" / "schedules.py", "NAME = 'schedules'\n")
    write(folder / "vendored_tool.py", "NAME = 'tool'\n")
    write_submission(folder, """
        from optimizers.adam import NAME as ADAM
        import vendored_tool
        VALUE = [ADAM, vendored_tool.NAME]

        def probe():
            import optimizers.schedules
            return optimizers.schedules.NAME
    """)
    assert run_python(load_and_probe(folder), tmp_path) == [[["adam", "tool"], "schedules"]]


# --- imports through the checkout's own path ------------------------------------------------------


def make_checkout(root: Path, regular_packages: bool, import_prefix: str) -> Path:
    """A leaderboard-style checkout `root/submissions_algorithms/submissions/self_tuning/demo/`.

    Its submission imports `<import_prefix>.self_tuning.demo.helper` at load and
    `<import_prefix>.self_tuning.demo.later` inside `probe()`.
    """
    demo = root / "submissions_algorithms" / "submissions" / "self_tuning" / "demo"
    if regular_packages:
        for folder in (demo, *list(demo.parents)[:3]):
            write(folder / "__init__.py")
    write(demo / "helper.py", "VALUE = 'helper at load'\n")
    write(demo / "later.py", "VALUE = 'later in function'\n")
    write_submission(demo, f"""
        from {import_prefix}.self_tuning.demo.helper import VALUE

        def probe():
            import {import_prefix}.self_tuning.demo.later as later
            return later.VALUE
    """)
    return demo


@pytest.mark.parametrize("import_prefix", ["submissions", "submissions_algorithms.submissions"])
@pytest.mark.parametrize("regular_packages", [True, False], ids=["with_init_files", "namespace_folders"])
def test_checkout_path_imports_resolve(tmp_path, regular_packages, import_prefix):
    """`submissions.self_tuning.<name>...` (or `submissions_algorithms.submissions...`) imports resolve to the
    checkout holding the submission, with or without `__init__.py` files in its folders."""
    demo = make_checkout(tmp_path / "checkout", regular_packages, import_prefix)
    assert run_python(load_and_probe(demo), tmp_path) == [["helper at load", "later in function"]]


# --- nothing is shadowed ---------------------------------------------------------------------------


def test_an_importable_regular_package_or_module_wins_over_a_vendored_one(tmp_path):
    """The rule: a name Python already finds as a regular module or package on sys.path (an installed
    package, the user's code) is left to Python, so a vendored copy of the same name never shadows it."""
    site = tmp_path / "site"
    write(site / "optimizers" / "__init__.py", "WHICH = 'installed'\n")
    write(site / "vendored_tool.py", "WHICH = 'installed'\n")
    folder = tmp_path / "shadowing_sub"
    write(folder / "optimizers" / "__init__.py", "WHICH = 'vendored'\n")
    write(folder / "vendored_tool.py", "WHICH = 'vendored'\n")
    write_submission(folder, """
        import optimizers, vendored_tool
        VALUE = [optimizers.WHICH, vendored_tool.WHICH]

        def probe():
            import optimizers as again
            return again.WHICH
    """)
    assert run_python(load_and_probe(folder), tmp_path, pythonpath=[site]) == [[["installed", "installed"], "installed"]]


def test_a_namespace_portion_elsewhere_on_sys_path_is_merged(tmp_path):
    """A vendored namespace package keeps the portions of the same name found on sys.path: submodules of
    both import, the submission's folder first."""
    site = tmp_path / "site"
    write(site / "optimizers" / "extra.py", "NAME = 'extra from site'\n")
    folder = tmp_path / "merging_sub"
    write(folder / "optimizers" / "adam.py", "NAME = 'adam vendored'\n")
    write_submission(folder, """
        import optimizers.adam

        def probe():
            import optimizers.extra
            return optimizers.extra.NAME
    """)
    code = f"""
        import json, sys
        from pytest_algoperf.submission_loading import load_submission
        submission = load_submission({str(folder)!r})
        print(json.dumps([submission.module.optimizers.adam.NAME, submission.module.probe(),
                          list(sys.modules["optimizers"].__path__)]))
    """
    adam, extra, search_path = run_python(code, tmp_path, pythonpath=[site])
    assert (adam, extra) == ("adam vendored", "extra from site")
    assert [Path(p).resolve() for p in search_path] == [(folder / "optimizers").resolve(), (site / "optimizers").resolve()]


# --- two checkouts in one process ---------------------------------------------------------------------


@pytest.mark.parametrize("checkout_imports", ["at_load", "in_function"])
@pytest.mark.parametrize("order", ["baseline_first", "checkout_first"])
def test_the_project_baseline_and_a_checkout_submission_load_in_one_process(tmp_path, order, checkout_imports):
    """The project's self-tuning baseline (which imports `submissions.nadamw.submission`) and a leaderboard
    checkout's submission (importing `submissions.self_tuning.demo...`) both work in one process, in either
    order, whether the checkout touches `submissions` at load or only inside its functions."""
    demo = tmp_path / "checkout" / "submissions_algorithms" / "submissions" / "self_tuning" / "demo"
    write(demo / "helper.py", "VALUE = 'checkout helper'\n")
    if checkout_imports == "at_load":
        write_submission(demo, """
            from submissions.self_tuning.demo.helper import VALUE

            def probe():
                import submissions.self_tuning.demo.helper as helper
                return helper.VALUE
        """)
    else:
        write_submission(demo, """
            def probe():
                import submissions.self_tuning.demo.helper as helper
                return helper.VALUE
        """)
    paths = [str(SELF_TUNING_BASELINE), str(demo)]
    if order == "checkout_first":
        paths.reverse()
    code = f"""
        import json, sys
        from pytest_algoperf.submission_loading import load_submission
        loaded = {{str(path): load_submission(path) for path in {paths!r}}}
        baseline, checkout = loaded[{str(SELF_TUNING_BASELINE)!r}], loaded[{str(demo)!r}]
        print(json.dumps([baseline.batch_size("mnist", "mnist"), baseline.module.nadamw.__file__,
                          checkout.module.probe(), sys.modules["submissions.self_tuning.demo.helper"].__file__]))
    """
    batch_size, nadamw_file, helper_value, helper_file = run_python(code, tmp_path, torch_compat=True)
    assert batch_size == 16
    assert Path(nadamw_file) == PROJECT_ROOT / "submissions" / "nadamw" / "submission.py"
    assert helper_value == "checkout helper"
    assert Path(helper_file).resolve() == (demo / "helper.py").resolve()


@pytest.mark.parametrize("regular_packages", [True, False], ids=["with_init_files", "namespace_folders"])
def test_two_checkouts_share_the_submissions_name_when_the_first_imports_it_only_later(tmp_path, regular_packages):
    """A first checkout that imports `submissions...` only inside a function does not hide a second checkout's
    `submissions` folder: the second imports its helper at load, then the first's function still works.
    (The checkouts' folders below `submissions` differ, as for the project's baselines and a leaderboard checkout.)"""
    first = tmp_path / "first" / "submissions" / "self_tuning" / "alpha"
    second = tmp_path / "second" / "submissions" / "external_tuning" / "beta"
    for demo in (first, second):
        if regular_packages:
            for folder in (demo, demo.parent, demo.parent.parent):
                write(folder / "__init__.py")
        write(demo / "helper.py", f"VALUE = {demo.name!r}\n")
    write_submission(first, """
        VALUE = None

        def probe():
            import submissions.self_tuning.alpha.helper as helper
            return helper.VALUE
    """)
    write_submission(second, """
        from submissions.external_tuning.beta.helper import VALUE

        def probe():
            import submissions.external_tuning.beta.helper as helper
            return helper.VALUE
    """)
    assert run_python(load_and_probe(first, second), tmp_path) == [[None, "alpha"], ["beta", "beta"]]


# --- missing packages ---------------------------------------------------------------------------------


def test_a_missing_package_at_load_names_it_and_the_pip_command(tmp_path):
    """Importing a package that is not installed fails the load with one line naming it and `pip install <name>`."""
    folder = tmp_path / "needs_package"
    write_submission(folder, "import not_installed_pkg_xyz\n")
    with pytest.raises(SubmissionError) as error:
        load_submission(folder)
    message = str(error.value)
    assert "'not_installed_pkg_xyz'" in message and "is not installed" in message
    assert "`pip install not_installed_pkg_xyz`" in message
    assert "\n" not in message


def test_a_missing_package_points_at_the_requirements_file_next_to_the_submission(tmp_path):
    """With a requirements.txt beside submission.py the fix is `pip install -r <that file>`."""
    folder = tmp_path / "with_requirements"
    write_submission(folder, "from not_installed_pkg_xyz.sub import thing\n")
    write(folder / "requirements.txt", "not_installed_pkg_xyz\n")
    with pytest.raises(SubmissionError) as error:
        load_submission(folder)
    message = str(error.value)
    assert "'not_installed_pkg_xyz'" in message
    assert f"`pip install -r {(folder / 'requirements.txt').resolve()}`" in message


@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_a_jax_or_tensorflow_import_says_only_pytorch_submissions_run(tmp_path, framework):
    """A JAX or TensorFlow import is not an install problem: the message says the benchmark runs PyTorch only."""
    folder = tmp_path / f"uses_{framework}"
    write_submission(folder, f"import {framework}\n")
    with pytest.raises(SubmissionError) as error:
        load_submission(folder)
    message = str(error.value)
    assert f"imports '{framework}'" in message and "only PyTorch submissions run here" in message
    assert "pip install" not in message


def test_a_missing_submodule_of_an_installed_package_is_a_code_error_not_an_install_one(tmp_path):
    """`import torch.not_a_module` reports the ordinary import error, without advice to install anything."""
    folder = tmp_path / "bad_submodule"
    write_submission(folder, "import torch.not_a_module\n")
    with pytest.raises(SubmissionError) as error:
        load_submission(folder)
    message = str(error.value)
    assert "ModuleNotFoundError: No module named 'torch.not_a_module'" in message
    assert "pip install" not in message and "is not installed" not in message


def test_a_missing_package_imported_inside_update_params_becomes_the_one_line_message(tmp_path):
    """A package first imported inside `update_params` fails the call with the same one-line install advice."""
    folder = tmp_path / "imports_late"
    write(folder / "submission.py", REQUIRED_FUNCTIONS.replace(
        "    return optimizer_state, current_param_container, model_state",
        "    import not_installed_pkg_xyz\n    return optimizer_state, current_param_container, model_state",
    ))
    submission = load_submission(folder)
    with pytest.raises(SubmissionError) as error:
        submission.update_params(None, None, {}, None, None, {}, None, {}, [], 0, None)
    message = str(error.value)
    assert message.startswith("update_params: ")
    assert "'not_installed_pkg_xyz'" in message and "`pip install not_installed_pkg_xyz`" in message
    assert "\n" not in message


@pytest.mark.parametrize("import_name, distribution", sorted(DISTRIBUTION_NAMES.items()))
def test_import_names_map_to_their_pypi_distribution(tmp_path, import_name, distribution):
    """Packages whose import name differs from their PyPI name get the PyPI name in the pip command."""
    message = missing_package_message(ModuleNotFoundError(f"No module named {import_name!r}", name=import_name),
                                      tmp_path / "submission.py")
    assert message is not None and f"`pip install {distribution}`" in message


def test_the_well_known_renames_are_mapped():
    """absl -> absl-py, sklearn -> scikit-learn, yaml -> pyyaml, PIL -> pillow, cv2 -> opencv-python."""
    assert {name: DISTRIBUTION_NAMES.get(name) for name in ("absl", "sklearn", "yaml", "PIL", "cv2")} == {
        "absl": "absl-py", "sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python",
    }


def test_a_missing_sklearn_gets_the_scikit_learn_install_command_through_load(tmp_path):
    """End to end: a submission whose `sklearn` import fails is told `pip install scikit-learn`.

    sklearn is installed here, so the child interpreter blocks it the way Python allows
    (`sys.modules["sklearn"] = None`), which raises ModuleNotFoundError for that name."""
    folder = tmp_path / "needs_sklearn"
    write_submission(folder, "import sklearn\n")
    code = f"""
        import json, sys
        sys.modules["sklearn"] = None
        from pytest_algoperf.submission_loading import SubmissionError, load_submission
        try:
            load_submission({str(folder)!r})
        except SubmissionError as error:
            print(json.dumps(str(error)))
        else:
            print(json.dumps("loaded"))
    """
    message = run_python(code, tmp_path)
    assert "'sklearn'" in message and "`pip install scikit-learn`" in message


@pytest.mark.parametrize("framework", OTHER_FRAMEWORKS)
def test_every_other_framework_gets_the_pytorch_only_message(tmp_path, framework):
    """jax, flax, optax, tensorflow and friends all get the PyTorch-only message, not a pip command."""
    message = missing_package_message(ModuleNotFoundError(name=framework), tmp_path / "submission.py")
    assert message is not None and "only PyTorch submissions run here" in message and "pip install" not in message


@pytest.mark.parametrize(
    "error",
    [
        ImportError("cannot import name 'x' from 'torch'", name="torch"),
        ValueError("not an import problem"),
        ModuleNotFoundError("no name attached"),
        ModuleNotFoundError("No module named 'torch.not_a_module'", name="torch.not_a_module"),
        ModuleNotFoundError("No module named 'absl.not_a_module'", name="absl.not_a_module"),
    ],
    ids=["import_error", "value_error", "no_name", "torch_submodule", "absl_submodule"],
)
def test_other_errors_are_not_reported_as_missing_packages(tmp_path, error):
    """Only a ModuleNotFoundError for a package that is not installed is an install problem."""
    assert missing_package_message(error, tmp_path / "submission.py") is None


def test_a_missing_submodule_of_a_missing_package_names_the_top_level_package(tmp_path):
    """`import not_installed_pkg_xyz.sub` advises installing `not_installed_pkg_xyz`."""
    message = missing_package_message(ModuleNotFoundError(name="not_installed_pkg_xyz.sub"), tmp_path / "submission.py")
    assert message is not None and "'not_installed_pkg_xyz'" in message and "`pip install not_installed_pkg_xyz`" in message
