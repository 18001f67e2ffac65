"""What machine and software a trial ran on: upstream's meta_data system keys and the report header.

Upstream's runner writes, after the workload's properties: a utilisation
sample (cpu, memory, disk, network, each GPU and their average), then the
software (platform, python, git) and the hardware (cpu and GPU models and
counts, the NVIDIA driver). `system_meta_data` gives those keys in that order.
The utilisation is sampled on every call; everything else is constant for a
process and is looked up once.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

# The per-GPU utilisation keys, `gpu.<index>.<field>` and `gpu.avg.<field>`, in upstream's order.
GPU_FIELDS = ("compute.util", "mem.util", "mem.total", "mem.used", "mem.free", "temp.current")
NVIDIA_SMI_TIMEOUT_SEC = 10


def _git(*args: str, cwd: Optional[Path] = None) -> Optional[str]:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda x{torch.cuda.device_count()} ({torch.cuda.get_device_name(0)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def hardware_identity() -> str:
    """The kind of device a trial's times are measured on, as the experiment record compares it
    (thread counts and how many devices are visible are left out: they vary with -n and torchrun)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu {cpu_model_name()} ({os.cpu_count()} cores)"


# --- nvidia-smi -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _nvidia_smi() -> Optional[str]:
    return shutil.which("nvidia-smi")


def query_gpus(fields: Sequence[str]) -> List[List[str]]:
    """One row of `fields` per GPU that nvidia-smi lists; [] without nvidia-smi or when it fails.

    The last field may contain commas (GPU names can), so each line is split at most len(fields)-1 times.
    """
    executable = _nvidia_smi()
    if executable is None:
        return []
    command = [executable, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_SEC)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:  # e.g. no driver loaded, or a driver/library version mismatch
        return []
    rows = [[cell.strip() for cell in line.split(",", len(fields) - 1)] for line in result.stdout.splitlines() if line.strip()]
    return [row for row in rows if len(row) == len(fields)]


def _number(text: str) -> Optional[float]:
    """nvidia-smi's value as a float; None for '[N/A]', '[Not Supported]' and the like (e.g. under MIG)."""
    try:
        return float(text)
    except ValueError:
        return None


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    return numerator / denominator if numerator is not None and denominator else None


def gpu_utilization() -> Dict[str, Any]:
    """`gpu.count`, then each GPU's six keys, then their averages, with GPUtil's units (as upstream logs them).

    Load and memory use are fractions (0..1), memory in MiB, temperature in °C. Without NVIDIA GPUs
    the count is 0, there are no per-GPU keys and the averages are null.
    """
    rows = query_gpus(("index", "utilization.gpu", "memory.total", "memory.used", "memory.free", "temperature.gpu"))
    data: Dict[str, Any] = {"gpu.count": len(rows)}
    samples: List[Tuple[Optional[float], ...]] = []
    for index, load, total, used, free, temperature in rows:
        load_percent, total_mib, used_mib = _number(load), _number(total), _number(used)
        sample = (_ratio(load_percent, 100.0), _ratio(used_mib, total_mib), total_mib, used_mib, _number(free), _number(temperature))
        samples.append(sample)
        data.update({f"gpu.{index}.{field}": value for field, value in zip(GPU_FIELDS, sample)})
    for position, field in enumerate(GPU_FIELDS):
        known = [sample[position] for sample in samples if sample[position] is not None]
        data[f"gpu.avg.{field}"] = sum(known) / len(known) if known else None
    return data


# --- the meta_data keys ---------------------------------------------------------------------


def utilization() -> Dict[str, Any]:
    """Upstream's utilisation keys, sampled now; a value the system does not expose is null."""
    import psutil

    frequency = psutil.cpu_freq()  # None where the kernel exposes no frequency (some VMs, containers)
    memory = psutil.virtual_memory()
    disk = psutil.disk_io_counters()  # None without readable disk statistics
    network = psutil.net_io_counters()
    data: Dict[str, Any] = {
        # Percent since the previous call in this process; upstream's first trial reads 0.0 too.
        "cpu.util.avg_percent_since_last": psutil.cpu_percent(interval=None),
        "cpu.freq.current": frequency.current if frequency else None,
        "mem.total": memory.total,
        "mem.available": memory.available,
        "mem.used": memory.used,
        "mem.percent_used": memory.percent,
        # Upstream files the disk counters under `mem.`; the names are kept as it writes them.
        "mem.read_bytes_since_boot": disk.read_bytes if disk else None,
        "mem.write_bytes_since_boot": disk.write_bytes if disk else None,
        "net.bytes_sent_since_boot": network.bytes_sent if network else None,
        "net.bytes_recv_since_boot": network.bytes_recv if network else None,
    }
    data.update(gpu_utilization())
    return data


@functools.lru_cache(maxsize=None)
def _software_info(repo_dir: Optional[Path]) -> Tuple[Tuple[str, Any], ...]:
    return (
        ("os_platform", platform.platform()),
        ("python_version", platform.python_version()),
        ("python_compiler", platform.python_compiler()),
        ("git_branch", _git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo_dir)),
        ("git_commit_hash", _git("rev-parse", "HEAD", cwd=repo_dir)),
    )


@functools.lru_cache(maxsize=None)
def _hardware_info() -> Tuple[Tuple[str, Any], ...]:
    # Upstream counts the GPUs nvidia-smi lists (all of the machine's, whatever CUDA_VISIBLE_DEVICES says).
    # The name is queried last: it may contain commas.
    rows = query_gpus(("driver_version", "name"))
    if rows:
        gpu_count, gpu_model_name, gpu_driver = len(rows), rows[0][1], rows[0][0]
    else:
        import torch

        # No NVIDIA driver to ask: torch may still see a GPU (e.g. ROCm), but there is no NVIDIA driver version.
        gpu_count = torch.cuda.device_count()
        gpu_model_name, gpu_driver = (torch.cuda.get_device_name(0) if gpu_count else None), None
    return (
        ("cpu_model_name", cpu_model_name()),
        ("cpu_count", os.cpu_count()),
        ("gpu_model_name", gpu_model_name),
        ("gpu_count", gpu_count),
        ("gpu_driver", gpu_driver),
    )


def system_meta_data(repo_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Upstream's system meta_data keys in its order: utilisation (sampled now), software, hardware."""
    return {**utilization(), **dict(_software_info(repo_dir)), **dict(_hardware_info())}


def extra_meta_data() -> Dict[str, Any]:
    """What this plugin records beyond upstream's keys; written after them."""
    import torch

    return {"torch_version": torch.__version__}
