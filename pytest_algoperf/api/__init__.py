"""The AlgoPerf API that submissions and workloads program against (reference §1–§2).

The bottom layer of the project: nothing here imports the harness, the pytest
plugin or the workloads, so the layers read bottom-up
API -> workloads and baselines -> harness (runner, results, rules) -> plugin.
Upstream's module names map onto these modules (`upstream_names`), and the
former flat paths (`pytest_algoperf.spec`, ...) stay importable.
"""
