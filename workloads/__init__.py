"""The benchmark's workloads: one package each, listed in `workloads.registry`."""

from workloads.registry import get_workload, list_workloads

__all__ = ["get_workload", "list_workloads"]
