"""Exports of a run directory to the tools users already keep their experiments in (MLflow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACKERS = ("mlflow",)


def make_tracker(track: str | None, run_dir: Path, sweep_name: str, warn: Callable[[str], None]) -> Any:
    """The tracker `costbench sweep --track NAME` logs records to as they arrive, or None without --track.

    An unknown name or a missing package is a UserError before any trial runs.
    """
    if track is None:
        return None
    from costbench.errors import UserError, did_you_mean

    if track not in TRACKERS:
        raise UserError(f"--track '{track}' is not one of {', '.join(TRACKERS)}{did_you_mean(track, TRACKERS)}")
    from costbench.export.mlflow import SweepTracker

    return SweepTracker(run_dir, sweep_name, warn)
