"""How a submission's own imports resolve, as they do inside the checkout it was written in.

Leaderboard submissions import their helpers in three ways, and each must work
at load time and later, inside the submission's functions:

* relative imports (`from .muon import X`): the submission module is loaded as
  `<private package>.submission`, the package's path being the submission's folder;
* vendored top-level modules (`from optimizers.adam import X`) that sit in the
  submission's folder;
* imports through the checkout's own path (`from submissions.self_tuning.muon.muon
  import X`, or `submissions_algorithms.submissions...`): a top-level name that is
  the name of a folder above the submission file resolves to that folder.

One rule keeps this from shadowing anything: a name that Python finds as a
regular module or package anywhere on `sys.path` (an installed package, the
user's own code) is left to Python. Only names that would not import otherwise,
or that resolve to a namespace package, are filled in here; a namespace
package keeps its other portions, after the submission's folder.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Dict, List, Optional, Sequence

PRIVATE_PACKAGE_PREFIX = "algoperf_submission_"


def _package_names_above(module_file: Path) -> Dict[str, Path]:
    """Top-level import names a submission may use for the folders that hold it, nearest first."""
    names: Dict[str, Path] = {}
    for folder in _folder_and_parents(module_file.parent):
        if folder.name.isidentifier() and folder.name not in names:
            names[folder.name] = folder
    return names


def _folder_and_parents(folder: Path) -> List[Path]:
    folder = folder.resolve()
    return [folder, *folder.parents][:-1]  # never the filesystem root


def _module_in(folder: Path, name: str) -> Optional[Path]:
    """`folder/name.py`, or `folder/name/` when it is a folder (a package, regular or namespace)."""
    file = folder / f"{name}.py"
    if file.is_file():
        return file
    package = folder / name
    return package if package.is_dir() else None


class SubmissionImportFinder(importlib.abc.MetaPathFinder):
    """Resolves a loaded submission's vendored modules and checkout-path imports (see the module docstring)."""

    def __init__(self) -> None:
        self._vendor_folders: List[Path] = []
        self._checkout_folders: Dict[str, List[Path]] = {}  # every checkout's folder of that name, first loaded first
        self._resolving = threading.local()

    def add_submission(self, module_file: Path) -> None:
        folder = module_file.parent.resolve()
        if folder not in self._vendor_folders:
            self._vendor_folders.append(folder)
        for name, path in _package_names_above(module_file).items():
            folders = self._checkout_folders.setdefault(name, [])
            if path not in folders:
                folders.append(path)
            _extend_loaded_package(name, path)

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if path is not None or "." in fullname or getattr(self._resolving, "active", False):
            return None  # submodules resolve through their package's __path__
        candidates = [found for found in (_module_in(folder, fullname) for folder in self._vendor_folders) if found]
        checkout_folders = self._checkout_folders.get(fullname, [])
        candidates.extend(checkout_folders)
        if not candidates:
            return None
        elsewhere = self._spec_elsewhere(fullname)
        if elsewhere is not None and not _is_namespace(elsewhere):
            return None  # a regular module or package on sys.path wins: nothing is shadowed
        # Every checkout's folder of this name joins the package, as `_extend_loaded_package` does once it is loaded.
        other_checkouts = [str(folder) for folder in checkout_folders if folder != candidates[0]]
        other_portions = list(elsewhere.submodule_search_locations or []) if elsewhere is not None else []
        return _spec_for(fullname, candidates[0], other_checkouts, other_portions)

    def _spec_elsewhere(self, fullname: str) -> Optional[importlib.machinery.ModuleSpec]:
        """What the rest of the import system finds for `fullname` without this finder."""
        self._resolving.active = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, None)
                if spec is not None:
                    return spec
            return None
        finally:
            self._resolving.active = False


def _extend_loaded_package(name: str, folder: Path) -> None:
    """A second checkout's folder joins a package of that name that is already imported (e.g. `submissions`
    of the project's baselines and of a leaderboard checkout), so both resolve in one process."""
    module = sys.modules.get(name)
    search_path = getattr(module, "__path__", None)
    if isinstance(search_path, list) and str(folder) not in search_path:
        search_path.append(str(folder))


def _is_namespace(spec: importlib.machinery.ModuleSpec) -> bool:
    return spec.origin in (None, "namespace") and spec.submodule_search_locations is not None


def _spec_for(
    fullname: str, location: Path, other_checkouts: List[str], other_portions: List[str]
) -> importlib.machinery.ModuleSpec:
    if location.is_file():
        return importlib.util.spec_from_file_location(fullname, location)
    search_path = [str(location), *other_checkouts]  # other_checkouts: unique, without `location`
    init = location / "__init__.py"
    if init.is_file():
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=search_path)
    spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
    spec.submodule_search_locations = search_path + [p for p in other_portions if p not in search_path]
    return spec


def import_finder() -> SubmissionImportFinder:
    """The process's finder, first on sys.meta_path (it defers to the others itself); idempotent."""
    for finder in sys.meta_path:
        if isinstance(finder, SubmissionImportFinder):
            return finder
    finder = SubmissionImportFinder()
    sys.meta_path.insert(0, finder)
    return finder


def private_package(module_file: Path, digest: str) -> str:
    """A package named after the submission, whose path is its folder, so relative imports work."""
    name = PRIVATE_PACKAGE_PREFIX + digest
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(module_file.parent.resolve())]
        package.__package__ = name
        sys.modules[name] = package
    return name


# Import names whose PyPI distribution is called otherwise.
DISTRIBUTION_NAMES = {
    "absl": "absl-py", "sklearn": "scikit-learn", "skimage": "scikit-image", "GPUtil": "gputil", "yaml": "pyyaml",
    "PIL": "pillow", "cv2": "opencv-python", "torch_geometric": "torch-geometric",
}
# Frameworks a PyTorch benchmark never installs.
OTHER_FRAMEWORKS = ("jax", "jaxlib", "flax", "optax", "chex", "tensorflow", "tensorflow_datasets", "tensorflow_text", "clu")


def missing_package_message(error: BaseException, module_file: Path) -> Optional[str]:
    """One line naming the missing package and how to get it; None when `error` is not a missing package."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    name = error.name.split(".")[0]
    if name != error.name and importlib.util.find_spec(name) is not None:
        return None  # a missing submodule of an installed package is a code problem, not an install one
    if name in OTHER_FRAMEWORKS:
        return (
            f"{module_file.name} imports {name!r}, which this PyTorch benchmark does not install; "
            f"only PyTorch submissions run here (remove the {name} import or use the submission's PyTorch version)"
        )
    requirements = module_file.parent / "requirements.txt"
    how = f"pip install -r {requirements}" if requirements.is_file() else f"pip install {DISTRIBUTION_NAMES.get(name, name)}"
    return f"{module_file.name} needs the package {name!r}, which is not installed; install it with `{how}`"
