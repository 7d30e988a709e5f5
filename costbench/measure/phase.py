"""One instrument for one phase of a trial: wall time, peak memory and energy, measured alike for all.

``with measure_phase(memory, device) as phase: ...`` then read ``phase.result``: a typed ``PhaseCost``
with units in the field names. The trial records what the phase cost without knowing how it was measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from costbench.measure.energy import EnergyMeter
from costbench.measure.memory import PeakMemory


@dataclass
class PhaseCost:
    """What one phase cost. ``None`` means the machine could not measure it (never a guess)."""

    seconds: float
    start_mem_mb: float | None  # in use when the phase began: the baseline its growth is measured from
    peak_mem_mb: float | None  # peak during the phase (process RSS on CPU, allocated tensors on CUDA)
    peak_reserved_mb: float | None  # CUDA caching allocator's peak; None on CPU
    energy_j: float | None
    energy_why_unavailable: str | None

    @property
    def mem_growth_mb(self) -> float | None:
        """Peak over the phase's starting point: what the phase itself needed."""
        if self.peak_mem_mb is None or self.start_mem_mb is None:
            return None
        return max(0.0, self.peak_mem_mb - self.start_mem_mb)


class _Phase:
    result: PhaseCost


@contextmanager
def measure_phase(memory: PeakMemory, device: Any) -> Iterator[_Phase]:
    """Measure the ``with`` body; the result is set on exit, also when the body raises."""
    phase = _Phase()
    memory.reset()
    start_mb = memory.current_mb()
    meter = EnergyMeter(device)
    begin = time.perf_counter()
    try:
        with meter:
            yield phase
    finally:
        phase.result = PhaseCost(seconds=time.perf_counter() - begin, start_mem_mb=start_mb,
                                 peak_mem_mb=memory.peak_mb(), peak_reserved_mb=memory.reserved_peak_mb(),
                                 energy_j=meter.joules, energy_why_unavailable=meter.why_unavailable)
