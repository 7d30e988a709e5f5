"""Energy from hardware counters only: RAPL on CPUs, NVML on NVIDIA GPUs; otherwise None and why.

Nothing here estimates energy from a nameplate figure: where no counter can be read, ``joules`` stays
None and ``why_unavailable`` says what was missing, so a report can print "n/a" with the reason.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import torch

POWERCAP_ROOT = Path("/sys/class/powercap")
RAPL_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # package domains; intel-rapl:N:M sub-zones are inside them
RAPL_POLL_S = 30.0  # read often enough that a counter never wraps twice between reads


class _Rapl:
    """Cumulative joules over all RAPL package domains, unwrapping each counter at its maximum."""

    def __init__(self, zones: list[Path]) -> None:
        self._zones = zones
        self._max_uj = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        self._last_uj = [self._raw(z) for z in zones]
        self._total_uj = 0
        self._lock = threading.Lock()

    @staticmethod
    def _raw(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def read(self) -> float:
        with self._lock:
            for i, zone in enumerate(self._zones):
                raw = self._raw(zone)
                delta = raw - self._last_uj[i]
                self._total_uj += delta if delta >= 0 else delta + self._max_uj[i]
                self._last_uj[i] = raw
            return self._total_uj / 1e6


def _open_rapl(root: Path) -> tuple[_Rapl | None, str]:
    """The RAPL reader and how it measures, or None and why not."""
    zones = sorted(p for p in root.glob("intel-rapl:*") if RAPL_PACKAGE.match(p.name))
    if not zones:
        return None, (f"no RAPL package domain under {root} (no powercap driver, or a VM/container that "
                      "does not expose it)")
    try:
        reader = _Rapl(zones)
    except PermissionError:
        return None, (f"RAPL counters under {root} are not readable by this user (root-only since "
                      "CVE-2020-8694; an admin can grant read access to energy_uj)")
    except (OSError, ValueError) as exc:
        return None, f"RAPL counters under {root} could not be read: {exc}"
    names = ", ".join(z.name for z in zones)
    return reader, f"RAPL package energy ({names}): whole CPU socket(s), other processes included"


def _open_nvml(device: torch.device) -> tuple[Callable[[], float] | None, str]:
    """An NVML total-energy reader (joules) for this GPU, or None and why not."""
    try:
        import pynvml
    except ImportError:
        return None, "pynvml is not installed (pip install \"costbench[gpu]\" to read the GPU energy counter)"
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        pynvml.nvmlInit()
        # by UUID, not index: CUDA_VISIBLE_DEVICES renumbers CUDA devices but not NVML's
        handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{torch.cuda.get_device_properties(index).uuid}")
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:  # an unreadable counter (old GPU, MIG, driver) is n/a, never a failed trial
        return None, f"NVML cannot read the energy counter of cuda:{index}: {exc}"
    return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0,
            f"NVML total energy of cuda:{index} (the GPU only, not the host)")


class EnergyMeter:
    """Joules used while inside ``with``; entering again adds to the total (interleaved chunks sum up).

    ``joules`` is None until a measurement ends, and stays None with ``why_unavailable`` set when no
    counter is readable. ``method`` says which counter and what it covers.
    """

    def __init__(self, device: torch.device | str, *, powercap_root: Path = POWERCAP_ROOT,
                 poll_s: float = RAPL_POLL_S) -> None:
        device = torch.device(device)
        self.joules: float | None = None
        self.seconds = 0.0
        self.method: str | None = None
        self.why_unavailable: str | None = None
        self._poll_s = poll_s
        self._poll = False
        reader: Callable[[], float] | None
        if device.type == "cuda":
            reader, note = _open_nvml(device)
        else:
            rapl, note = _open_rapl(Path(powercap_root))
            reader, self._poll = (rapl.read, True) if rapl else (None, False)
        self._read = reader
        if reader is None:
            self.why_unavailable = note
        else:
            self.method = note
        self._start_j = 0.0
        self._start_s = 0.0
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def __enter__(self) -> EnergyMeter:
        if self._read is not None:
            self._start_j = self._read()
            if self._poll:
                self._stop.clear()
                self._poller = threading.Thread(target=self._keep_reading, args=(self._read,), daemon=True)
                self._poller.start()
        self._start_s = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.seconds += time.perf_counter() - self._start_s
        if self._read is None:
            return
        if self._poller is not None:
            self._stop.set()
            self._poller.join()
            self._poller = None
        self.joules = (self.joules or 0.0) + self._read() - self._start_j

    def _keep_reading(self, read: Callable[[], float]) -> None:
        while not self._stop.wait(self._poll_s):
            read()
