"""PeakMemory: peaks grow with what was allocated, and reset() starts a new phase."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from costbench.measure.memory import PeakMemory, proc_status_mb

linux_only = pytest.mark.skipif(proc_status_mb("VmRSS") is None, reason="needs /proc/self/status (Linux)")

# Runs in a fresh process so the peaks are that process's own, not pytest's.
CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from costbench.measure.memory import PeakMemory

clear_refs = sys.argv[1]
memory = PeakMemory("cpu") if clear_refs == "default" else PeakMemory("cpu", clear_refs=Path(clear_refs))
out = {"method": memory.method}
for mb in (50, 200):
    memory.reset()
    out[f"base_{mb}"] = memory.current_mb()
    block = np.ones(mb * 2**20 // 8)  # written, so every page is resident
    out[f"peak_{mb}"] = memory.peak_mb()
    del block
memory.reset()
out["after_free_peak"] = memory.peak_mb()
memory.close()
print(json.dumps(out))
"""


def _run_child(clear_refs: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, clear_refs], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def _check_ordered(out: dict) -> None:
    assert out["peak_50"] - out["base_50"] >= 45
    assert out["peak_200"] - out["base_200"] >= 190
    assert out["peak_200"] > out["peak_50"] + 100
    assert out["after_free_peak"] < out["peak_200"] - 100  # reset forgot the freed 200 MB


@linux_only
def test_peaks_grow_with_allocation_size_via_vmhwm():
    out = _run_child("default")
    assert out["method"].startswith("VmHWM")
    _check_ordered(out)


@linux_only
def test_falls_back_to_sampling_when_clear_refs_is_not_writable(tmp_path):
    out = _run_child(str(tmp_path))  # a directory: writing "5" to it fails like a read-only clear_refs
    assert "sampled" in out["method"]
    _check_ordered(out)


def test_cpu_has_no_reserved_peak():
    assert PeakMemory("cpu").reserved_peak_mb() is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_peaks_follow_allocations():
    memory = PeakMemory("cuda")
    peaks = []
    for mb in (50, 200):
        memory.reset()
        block = torch.ones(mb * 2**20 // 4, device="cuda")
        del block
        peaks.append(memory.peak_mb())
    assert peaks[0] >= 50 and peaks[1] >= 200
    assert memory.reserved_peak_mb() >= peaks[1]
