"""Peak memory of this process (CPU) or of the framework's allocator (CUDA), resettable between phases.

CPU: ``VmHWM`` from /proc/self/status, reset by writing "5" to /proc/self/clear_refs, so one process
can measure its training and serving peaks apart. Not ``getrusage``: a spawned child inherits its
parent's ``ru_maxrss`` (a parent that peaked at 811 MB made a 14 MB child report 811 MB). Where
clear_refs cannot be written, a thread samples ``VmRSS`` instead (it can miss a spike shorter than
its interval) and ``method`` says so. CUDA: torch's peak allocated and reserved counters.
Figures are in MB of 2**20 bytes. torch is imported only for CUDA, so a CPU-only child measures fast.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

MB = 2**20
PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
SAMPLE_INTERVAL_S = 0.005


def _cuda() -> Any:
    """torch.cuda, imported on first CUDA use only."""
    import torch

    return torch.cuda


def proc_status_mb(field: str, status: Path = PROC_STATUS) -> float | None:
    """A ``Vm*`` field of /proc/self/status in MB, or None where the file or field is missing."""
    try:
        text = status.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024 / MB  # the kernel writes kB
    return None


class _RssSampler:
    """Highest VmRSS seen by a background thread since the last restart."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restart(self) -> None:
        self.stop()
        self.peak_mb = proc_status_mb("VmRSS")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def sample(self) -> None:
        rss = proc_status_mb("VmRSS")
        if rss is not None:
            self.peak_mb = rss if self.peak_mb is None else max(self.peak_mb, rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.sample()


class PeakMemory:
    """Peak memory since ``reset()``: process RSS on CPU, allocator counters on CUDA."""

    def __init__(self, device: Any, *, clear_refs: Path = CLEAR_REFS) -> None:
        """``device``: a torch.device or its name ('cpu', 'cuda', 'cuda:1')."""
        self.device = device
        self._on_cuda = str(device).startswith("cuda")
        self._clear_refs = Path(clear_refs)
        self._sampler: _RssSampler | None = None
        self._resettable_hwm = False
        if self._on_cuda:
            self.method = "torch.cuda max_memory_allocated / max_memory_reserved since reset"
        elif proc_status_mb("VmHWM") is None:
            self.method = f"unavailable: {PROC_STATUS} has no VmHWM (not Linux)"
        elif self._can_reset_hwm():
            self._resettable_hwm = True
            self.method = "VmHWM of this process, reset via /proc/self/clear_refs"
        else:
            self._sampler = _RssSampler()
            self.method = (f"VmRSS sampled every {SAMPLE_INTERVAL_S * 1000:g} ms ({self._clear_refs} is not "
                           "writable, so VmHWM cannot be reset); spikes shorter than that can be missed")

    def _can_reset_hwm(self) -> bool:
        try:
            self._clear_refs.write_text("5")
        except OSError:
            return False
        return True

    def reset(self) -> None:
        """Start a new phase: the peak restarts from what is in use now."""
        if self._on_cuda:
            _cuda().synchronize(self.device)
            _cuda().reset_peak_memory_stats(self.device)
        elif self._sampler is not None:
            self._sampler.restart()
        elif self._resettable_hwm:
            self._clear_refs.write_text("5")

    def peak_mb(self) -> float | None:
        """Peak since the last reset (CUDA: allocated by tensors), or None where unmeasurable."""
        if self._on_cuda:
            _cuda().synchronize(self.device)
            return _cuda().max_memory_allocated(self.device) / MB
        if self._sampler is not None:
            self._sampler.sample()
            return self._sampler.peak_mb
        return proc_status_mb("VmHWM")

    def current_mb(self) -> float | None:
        """In use now (CUDA: allocated by tensors; CPU: resident set)."""
        if self._on_cuda:
            return _cuda().memory_allocated(self.device) / MB
        return proc_status_mb("VmRSS")

    def reserved_peak_mb(self) -> float | None:
        """CUDA: peak held by the caching allocator since reset; None on CPU, where it has no meaning."""
        if self._on_cuda:
            return _cuda().max_memory_reserved(self.device) / MB
        return None

    def close(self) -> None:
        """Stop the sampling thread, where there is one."""
        if self._sampler is not None:
            self._sampler.stop()
