"""The one small interface every executor offers, so local processes and Ray are interchangeable."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from costbench.record import STATUSES
from costbench.spec import Trial

TRIAL_FUNCTION = "costbench.trial:run_trial"
TAIL_LINES = 12  # lines of traceback or output kept in a failed record


def resolve_trial_fn(spec: str) -> Callable[..., dict[str, Any]]:
    """'package.module:function' -> the function."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"trial function '{spec}' is not 'module:function'")
    return getattr(importlib.import_module(module), name)


def valid_record(record: Any, trial_id: str) -> dict[str, Any] | None:
    """The record a trial function returned, or None when it is not one for this trial."""
    ok = isinstance(record, dict) and record.get("id") == trial_id and record.get("status") in STATUSES
    return record if ok else None


def invalid_record_reason(record: Any) -> tuple[str, dict[str, Any]]:
    """The failure reason (and details) for a trial function that returned something else."""
    shown = repr(record)[:300]
    return (f"the trial function returned no valid record (needs a dict with this trial's id and a status "
            f"in {', '.join(STATUSES)}): {shown}", {})


@dataclass(frozen=True)
class TrialEvent:
    """What an executor reports while trials run; ``finished`` carries the trial's record."""

    kind: Literal["started", "phase", "finished"]
    trial_id: str
    phase: str | None = None  # e.g. "data", "train 2/5", "quantize", "latency"
    record: dict[str, Any] | None = None


class Executor(ABC):
    """Runs trials and reports events as they happen. Only the sweep driver writes results."""

    name: str

    @abstractmethod
    def run(self, trials: Sequence[Trial]) -> Iterator[TrialEvent]:
        """Run every trial, yielding events; each trial ends with exactly one ``finished`` event."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop launching trials and end the running ones; ``run`` then finishes promptly."""

    @abstractmethod
    def close(self) -> None:
        """Release workers and connections."""
