"""pytest-algoperf: the AlgoPerf training-algorithms benchmark as a pytest plugin.

`list_workloads()` and `get_workload(name)` give the workload registry; the
AlgoPerf API lives in `pytest_algoperf.api` (`pytest_algoperf.api.spec` and friends).
"""

__version__ = "0.1.0"


def list_workloads(pattern: str = "*"):
    """Registered workload names (variants included) matching a shell-style pattern."""
    from workloads.registry import list_workloads as _list

    return _list(pattern)


def get_workload(name: str, benchmark_version: str | None = None):
    """A ready `Workload` instance; an unknown name raises an error listing the known ones."""
    from scoring.versions import DEFAULT_VERSION
    from workloads.registry import get_workload as _get

    return _get(name, benchmark_version or DEFAULT_VERSION)
