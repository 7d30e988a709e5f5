"""The one small interface every executor offers, so local processes and Ray are interchangeable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from costbench.spec import Trial

TRIAL_FUNCTION = "costbench.trial:run_trial"


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
