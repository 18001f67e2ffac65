"""Criteo 1TB click-through prediction with DLRM-small (AlgoPerf's criteo1tb workloads)."""
