"""Warnings about a sweep that need to look at this machine (and so import torch).

Kept out of ``load_sweep`` so that reading and validating a sweep file never imports torch; the
commands that run or validate a sweep call these after loading it.
"""

from __future__ import annotations

from costbench.spec.expand import Trial


def cuda_warnings(trials: list[Trial]) -> list[str]:
    """One warning when trials ask for CUDA on a machine without a CUDA GPU (they will be skipped)."""
    cuda = [t for t in trials if t.config["device"].startswith("cuda")]
    if not cuda:
        return []
    from costbench.measure.environment import cuda_device_count

    if cuda_device_count() > 0:
        return []
    devices = sorted({t.config["device"] for t in cuda})
    return [f"{len(cuda)} trial(s) ask for {', '.join(devices)} but this machine has no CUDA GPU: "
            "they will be recorded as skipped"]
