"""What a reader of results needs to know about the machine the numbers came from."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PRECISION_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_int8",
                   "amx_tile")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "KMP_AFFINITY", "OMP_PROC_BIND")
LIBRARIES = ("torch", "torchao", "numpy", "pandas", "pydantic", "typer", "rich", "pyyaml", "matplotlib",
             "pyarrow", "ray", "onnxruntime", "lightgbm", "xgboost", "catboost", "scikit-learn")  # None: absent


def usable_cores() -> int | None:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {
        "model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "flags": {flag: flag in flags for flag in PRECISION_FLAGS},
    }


def cuda_device_count() -> int:
    """GPUs torch can use. Queries the driver but creates no CUDA context; trials fork from the
    forkserver, never from a process that asked this, so the query cannot break CUDA in a trial."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install counts as no GPU, not as a crash
        return 0


def gpu_info() -> list[dict[str, Any]]:
    if cuda_device_count() == 0:
        return []
    import torch

    driver, uuids = _nvidia_smi("driver_version"), _nvidia_smi("uuid")
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append({
            "index": i,
            "name": props.name,
            "memory_mb": round(props.total_memory / 2**20),
            "capability": f"{props.major}.{props.minor}",
            "driver": driver[i] if i < len(driver) else None,
            "uuid": uuids[i] if i < len(uuids) else None,
            "cuda": torch.version.cuda,
        })
    return gpus


def _nvidia_smi(field: str) -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The costbench checkout's commit when it runs from one (results name the code that made them)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def thread_settings() -> dict[str, Any]:
    """Threads in use now (torch intra/inter-op) and the environment variables that set them."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
    }


@lru_cache(maxsize=1)
def collect_environment() -> dict[str, Any]:
    """The machine, its accelerators and the software versions; what `costbench env --json` prints."""
    import torch

    from costbench import __version__

    return {
        "costbench": __version__,
        "costbench_commit": git_commit(),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python_executable": sys.executable,
        "cpu": cpu_info(),
        "gpus": gpu_info(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_settings": thread_settings(),
        "versions": library_versions(),
    }


def trial_environment(on_wait: Callable[[], None] | None = None,
                      on_acquired: Callable[[], None] | None = None) -> dict[str, Any]:
    """The environment as a trial process sees it, collected inside that process: the machine, software
    and the threads in effect (the resource plan applied). Host-stable fields only, so equal machines
    give equal ``env_id``s; run-specific facts (pid, times) stay in the record. ``gemm_peak`` is the CPU's
    matrix-multiply peak on the trial's threads (``roofline``), measured once and cached, so trials of a
    sweep share it (and their ``env_id``); measuring it takes the latency lock, whose ``on_wait`` /
    ``on_acquired`` these are."""
    from costbench.measure.roofline import cached_gemm_peaks

    env = dict(collect_environment())
    env.pop("python_executable", None)
    threads = thread_settings()
    env.update(thread_settings=threads, torch_threads=threads["torch_threads"],
               torch_interop_threads=threads["torch_interop_threads"], governor=cpu_governor(),
               gemm_peak=cached_gemm_peaks(threads["torch_threads"], on_wait, on_acquired))
    return env


def cpu_governor() -> str | None:
    """The CPU frequency governor of core 0 where Linux exposes it ('performance', 'powersave', ...)."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() or None
    except OSError:
        return None
