"""Import names for upstream AlgoPerf submissions: `algoperf.*` (v0.6) and `algorithmic_efficiency.*` (v0.5).

The finder is appended to the *end* of `sys.meta_path`, so a real installed
`algoperf` package is always found first and never shadowed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Optional, Sequence

UPSTREAM_PACKAGE_NAMES = ("algoperf", "algorithmic_efficiency")

# Upstream module name -> the module here that provides it.
ALIASED_MODULES = {
    "spec": "pytest_algoperf.api.spec",
    "pytorch_utils": "pytest_algoperf.api.pytorch_utils",
    "random_utils": "pytest_algoperf.api.random_utils",
    "param_utils": "pytest_algoperf.api.param_utils",
    "init_utils": "pytest_algoperf.api.init_utils",
    "data_utils": "pytest_algoperf.api.data_utils",
    "halton": "pytest_algoperf.api.halton",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: Optional[str]) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if self._target is not None:
            return importlib.import_module(self._target)
        package = types.ModuleType(spec.name)
        package.__path__ = []
        package.__version__ = "0.6.0"
        return package

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class UpstreamAliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        package, _, submodule = fullname.partition(".")
        if package not in UPSTREAM_PACKAGE_NAMES:
            return None
        if not submodule:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(None), is_package=True)
        if submodule in ALIASED_MODULES:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASED_MODULES[submodule]))
        return None


def install_upstream_aliases() -> None:
    """Makes `import algoperf.spec` etc. work unless the real package is installed; idempotent."""
    if not any(isinstance(finder, UpstreamAliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(UpstreamAliasFinder())
