"""One resource plan per sweep: how many trials run at once, threads per trial, GPUs per slot.

The engine computes it once and hands it to the executor; each trial applies it (``trial.apply_resources``)
and its record states what was in effect, so a resume can tell a record made with other threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from costbench.measure.environment import usable_cores
from costbench.spec import Trial


@dataclass(frozen=True)
class ResourcePlan:
    """How many trials run at once and with how many torch threads each, and why if it was changed."""

    workers: int | None  # None: the cluster schedules (Ray), from each trial's threads
    threads: int
    gpus: int = 0
    notes: list[str] = field(default_factory=list)

    def for_trial(self, trial: Trial, executor: str) -> dict[str, Any]:
        """What one trial is given: its own ``threads`` setting wins over the plan's."""
        return {"threads": trial.config.get("threads") or self.threads, "workers": self.workers,
                "gpus": self.gpus, "executor": executor}


def plan_resources(trials: Sequence[Trial], workers: int | None = None, threads: int | None = None, *,
                 cores: int | None = None, gpus: int | None = None) -> ResourcePlan:
    """Defaults: CUDA trials one worker per GPU, CPU trials one per core with one thread each.

    Workers × threads never exceeds the cores: oversubscribed trials slow each other down and their
    timings stop meaning anything, so ``workers`` is lowered and a note says so. A trial's own
    ``threads`` setting is respected (never substituted) and counts against the cores.
    """
    cores = cores or usable_cores() or 1
    if gpus is None:
        gpus = gpu_count(trials)
    all_cuda = bool(trials) and all(_on_gpu(t.config["device"], gpus) for t in trials)
    default_workers = max(1, gpus or 0) if all_cuda else cores
    if threads is None:
        threads = max(1, cores // (workers or default_workers)) if all_cuda else 1
    asked = workers or default_workers
    widest = max([t.config.get("threads") or threads for t in trials] or [threads])
    fit = max(1, cores // widest)
    notes = []
    if asked > fit:
        if workers is not None:
            notes.append(f"--workers {workers} with {widest} thread(s) each needs {workers * widest} cores but "
                         f"{cores} are usable: running {fit} worker(s)")
        asked = fit
    if widest > cores:
        notes.append(f"trials ask for {widest} threads but only {cores} cores are usable; their timings "
                     "include oversubscription")
    return ResourcePlan(workers=max(1, min(asked, len(trials) or 1)), threads=threads, gpus=gpus, notes=notes)


def _on_gpu(device: str, gpus: int) -> bool:
    return device.startswith("cuda") or (device == "auto" and gpus > 0)


def gpu_count(trials: Sequence[Trial]) -> int:
    """GPUs on this machine, asked only when some trial may use one (the query imports torch)."""
    if not any(t.config["device"].startswith("cuda") or t.config["device"] == "auto" for t in trials):
        return 0
    from costbench.measure.environment import cuda_device_count

    return cuda_device_count()
