"""Loading a submission module and calling it with errors that name the function and the fix."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import operator
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from pytest_algoperf.api.spec import TrainingCompleteError
from pytest_algoperf.api.torch_compat import install_torch_compat
from pytest_algoperf.api.upstream_names import install_upstream_aliases
from pytest_algoperf.submission_imports import import_finder, missing_package_message, private_package

REQUIRED_FUNCTIONS = ("get_batch_size", "init_optimizer_state", "update_params", "data_selection")
SEARCH_SPACE_FILE = "tuning_search_space.json"
SUBMISSION_FILE = "submission.py"


class SubmissionError(Exception):
    """A submission broke the API; the message names the function and how to fix it."""


@dataclasses.dataclass(frozen=True)
class SubmissionPaths:
    module_file: Path
    search_space_file: Optional[Path]

    @classmethod
    def resolve(cls, path: Path) -> "SubmissionPaths":
        """A folder holding submission.py (and maybe tuning_search_space.json), or a .py file.

        Raises FileNotFoundError with the fix when neither exists.
        """
        path = Path(path).expanduser().resolve()
        if path.is_dir():
            module_file = path / SUBMISSION_FILE
            if not module_file.is_file():
                raise FileNotFoundError(f"{path} has no {SUBMISSION_FILE}; point --algoperf-submission at the file or its folder.")
        elif path.is_file() and path.suffix == ".py":
            module_file = path
        else:
            raise FileNotFoundError(
                f"submission {path} does not exist; give a folder with {SUBMISSION_FILE} or a .py file."
            )
        search_space = module_file.parent / SEARCH_SPACE_FILE
        return cls(module_file, search_space if search_space.is_file() else None)

    @property
    def name(self) -> str:
        """The submission's name: its folder for submission.py, else the file's stem."""
        if self.module_file.name == SUBMISSION_FILE:
            return self.module_file.parent.name
        return self.module_file.stem

    def content_hash(self) -> str:
        digest = hashlib.sha256(self.module_file.read_bytes())
        if self.search_space_file is not None:
            digest.update(self.search_space_file.read_bytes())
        return digest.hexdigest()[:12]


def _short_traceback(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


class Submission:
    """A loaded submission module with checked calls into it."""

    def __init__(self, module: Any, paths: SubmissionPaths, import_seconds: float = 0.0) -> None:
        self.module = module
        self.paths = paths
        self.import_seconds = import_seconds  # wall time of the first import: work there is untimed
        missing = [name for name in REQUIRED_FUNCTIONS if not callable(getattr(module, name, None))]
        if missing:
            raise SubmissionError(
                f"{paths.module_file} does not define {', '.join(missing)}; every submission needs "
                f"{', '.join(REQUIRED_FUNCTIONS)} (prepare_for_eval is optional)."
            )
        self._prepare_for_eval = getattr(module, "prepare_for_eval", None)
        self.update_params_takes_train_state = "train_state" in inspect.signature(module.update_params).parameters
        self.source = paths.module_file.read_text()

    @property
    def api_version(self) -> str:
        """'v0.5' for submissions written against `algorithmic_efficiency` (dropout fixed at init)."""
        return "v0.5" if "algorithmic_efficiency" in self.source else "v0.6"

    @property
    def has_prepare_for_eval(self) -> bool:
        return self._prepare_for_eval is not None

    def _call(self, function_name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (SubmissionError, TrainingCompleteError):
            raise
        except Exception as error:
            if type(error).__name__ == "TrainingCompleteError":
                # Raised through a real installed `algoperf.spec`: the same signal.
                raise TrainingCompleteError(str(error)) from error
            missing = missing_package_message(error, self.paths.module_file)
            if missing is not None:
                raise SubmissionError(f"{function_name}: {missing}.") from error
            raise SubmissionError(f"{function_name} raised {_short_traceback(error)}; fix {function_name} in {self.paths.module_file.name}.") from error

    @staticmethod
    def _check_update_return(function_name: str, result: Any) -> Any:
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            got = f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__
            raise SubmissionError(f"{function_name} returned {got}, expected (optimizer_state, params, model_state).")
        return tuple(result)

    def batch_size(self, workload_name: str, base_workload_name: str) -> int:
        """Upstream's rule: a ValueError for a variant retries with the base workload's name."""
        try:
            size = self.module.get_batch_size(workload_name)
        except ValueError:
            if base_workload_name == workload_name:
                raise SubmissionError(f"get_batch_size has no batch size for {workload_name!r}; add it to get_batch_size.") from None
            size = self._call("get_batch_size", self.module.get_batch_size, base_workload_name)
        except Exception as error:
            raise SubmissionError(f"get_batch_size raised {_short_traceback(error)}; fix get_batch_size.") from error
        return _positive_int("get_batch_size", workload_name, size)

    def eval_batch_size(self, workload_name: str, default: int) -> int:
        """Upstream honours an undocumented `get_eval_batch_size`; so do we."""
        hook = getattr(self.module, "get_eval_batch_size", None)
        if hook is None:
            return default
        return _positive_int("get_eval_batch_size", workload_name, self._call("get_eval_batch_size", hook, workload_name))

    def init_optimizer_state(self, *args: Any) -> Any:
        return self._call("init_optimizer_state", self.module.init_optimizer_state, *args)

    def data_selection(self, *args: Any) -> Any:
        # Whatever it returns goes to update_params unchanged, as upstream's runner passes it on
        # (LAWA-style submissions return the queue itself and draw batches in update_params).
        return self._call("data_selection", self.module.data_selection, *args)

    def update_params(self, *args: Any, train_state: Any = None) -> Any:
        kwargs = {"train_state": train_state} if self.update_params_takes_train_state else {}
        result = self._call("update_params", self.module.update_params, *args, **kwargs)
        return self._check_update_return("update_params", result)

    def prepare_for_eval(self, *args: Any) -> Any:
        result = self._call("prepare_for_eval", self._prepare_for_eval, *args)
        return self._check_update_return("prepare_for_eval", result)


def _positive_int(function_name: str, workload_name: str, size: Any) -> int:
    """Any integer type upstream's runner accepts (int, numpy integers, anything with __index__)."""
    try:
        number = operator.index(size)
    except TypeError:
        number = None
    if number is None or isinstance(size, bool) or number < 1:
        raise SubmissionError(f"{function_name}({workload_name!r}) returned {size!r}, expected a positive integer.")
    return number


def import_submission_module(paths: SubmissionPaths) -> Any:
    """Imports the submission file as `<private package>.submission`; import errors become SubmissionErrors.

    See submission_imports.py for how the submission's own imports resolve.
    """
    install_upstream_aliases()
    install_torch_compat()
    digest = hashlib.sha256(str(paths.module_file).encode()).hexdigest()[:12]
    package = private_package(paths.module_file, digest)
    module_name = f"{package}.{paths.module_file.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    import_finder().add_submission(paths.module_file)
    module_spec = importlib.util.spec_from_file_location(module_name, paths.module_file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # as Python's own import does, so the module's imports can find it
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        missing = missing_package_message(error, paths.module_file)
        if missing is not None:
            raise SubmissionError(f"importing {paths.module_file} failed: {missing}.") from error
        raise SubmissionError(
            f"importing {paths.module_file} failed: {_short_traceback(error)}; fix the import so the file runs standalone."
        ) from error
    return module


def load_submission(path: Path) -> Submission:
    import time

    paths = SubmissionPaths.resolve(path)
    start = time.perf_counter()
    module = import_submission_module(paths)
    return Submission(module, paths, import_seconds=time.perf_counter() - start)
