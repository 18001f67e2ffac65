"""What machine and software a trial ran on: meta_data keys and the report header."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional


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


def memory_total_bytes() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda x{torch.cuda.device_count()} ({torch.cuda.get_device_name(0)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def system_meta_data(repo_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Upstream's software/hardware meta_data keys (utilisation sampling left out); a fresh copy each call."""
    return dict(_system_meta_data(repo_dir))


@functools.lru_cache(maxsize=None)
def _system_meta_data(repo_dir: Optional[Path]) -> Dict[str, Any]:
    """Constant for a process, so the git and device queries run once, not once per trial."""
    import torch

    gpu_count = torch.cuda.device_count()
    info: Dict[str, Any] = {
        "os_platform": platform.platform(),
        "python_version": platform.python_version(),
        "python_compiler": platform.python_compiler(),
        "torch_version": torch.__version__,
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo_dir),
        "git_commit_hash": _git("rev-parse", "HEAD", cwd=repo_dir),
        "cpu_model_name": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "mem.total": memory_total_bytes(),
        "gpu_count": gpu_count,
        "gpu_model_name": torch.cuda.get_device_name(0) if gpu_count else None,
        "gpu_driver": torch.version.cuda if gpu_count else None,
    }
    return info
