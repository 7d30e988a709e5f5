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


def package_warnings(trials: list[Trial]) -> list[str]:
    """One warning per model family whose library is not installed here (its trials, and the students it
    would teach, will be skipped)."""
    import importlib.util

    from costbench.tree_presets import INSTALL_HINT, PACKAGES

    counts: dict[str, int] = {}
    for t in trials:
        teacher = ((t.config.get("compress") or {}).get("distill") or {}).get("teacher") or {}
        for family in dict.fromkeys((t.config["model"]["family"], teacher.get("family"))):  # a teacher too
            if family in PACKAGES:
                counts[family] = counts.get(family, 0) + 1
    return [f"{n} {family} trial(s) need the {PACKAGES[family]} package, which is not installed: they will be "
            f"recorded as skipped; {INSTALL_HINT}"
            for family, n in counts.items() if importlib.util.find_spec(PACKAGES[family]) is None]


def machine_warnings(trials: list[Trial]) -> list[str]:
    """Everything about this machine that will turn trials into skipped records, said before they start."""
    return package_warnings(trials) + cuda_warnings(trials)
