"""The one small interface every executor offers, so local processes and Ray are interchangeable."""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from costbench.record import STATUSES
from costbench.spec import Trial
from costbench.store import record_problem

TRIAL_FUNCTION = "costbench.trial:run_trial"
TAIL_LINES = 12  # lines of traceback or output kept in a failed record
# A trial reports this phase while it waits for a machine-wide lock (the latency lock); executors stop
# its timeout clock until its next phase and record the wait as details.harness.lock_wait_s.
LOCK_WAIT_PHASE = "waiting for latency lock"
TEACHER_WAIT_PHASE = "waiting for the teacher"  # another trial trains the distillation teacher this one reads
WAIT_PHASES = (LOCK_WAIT_PHASE, TEACHER_WAIT_PHASE)


def resolve_trial_fn(spec: str) -> Callable[..., dict[str, Any]]:
    """'package.module:function' -> the function."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"trial function '{spec}' is not 'module:function'")
    return getattr(importlib.import_module(module), name)


@dataclass
class LockWait:
    """A trial's time waiting on another trial (a phase of ``WAIT_PHASES`` until its next phase: the
    latency lock, or a teacher another trial is training): its timeout clock stops meanwhile, and the
    total is recorded."""

    since: float | None = None  # monotonic, while waiting
    total_s: float = 0.0

    @property
    def waiting(self) -> bool:
        return self.since is not None

    def phase(self, phase: str, now: float) -> float:
        """Note the trial's new phase; returns the seconds of the wait it ended (0.0 if none)."""
        waited = self.stop(now)
        if phase in WAIT_PHASES:
            self.since = now
        return waited

    def stop(self, now: float) -> float:
        if self.since is None:
            return 0.0
        waited, self.since = now - self.since, None
        self.total_s += waited
        return waited


def call_trial_fn(fn: Callable[..., dict[str, Any]], trial: dict[str, Any], on_phase: Callable[[str], None],
                  on_partial: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Call a trial function with ``on_phase``, and with ``on_partial`` only if it takes one (or **kwargs).

    ``on_partial(metrics)`` hands the executor the metrics measured so far, so a trial ended by its
    timeout keeps them in its failed record.
    """
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        parameters = []
    takes = any(p.name == "on_partial" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    if takes:
        return fn(trial, on_phase=on_phase, on_partial=on_partial)
    return fn(trial, on_phase=on_phase)


def partial_metrics(metrics: Any) -> dict[str, float | None]:
    """The numbers (or nulls) of a trial's partial metrics; anything else it sent is dropped."""
    if not isinstance(metrics, dict):
        return {}
    return {str(k): v for k, v in metrics.items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))}


def timeout_reason(phase: str | None, timeout: float | None) -> str:
    """'timeout in phase train 2/5 after 60 s': where the trial was when its time ran out."""
    return f"timeout in phase {phase or 'start'} after {timeout or 0:g} s"


def valid_record(record: Any, trial_id: str) -> dict[str, Any] | None:
    """The record a trial function returned, or None when it is not one for this trial (or of a shape
    the readers would skip: see ``store.record_problem``)."""
    ok = isinstance(record, dict) and record.get("id") == trial_id and record_problem(record) is None
    return record if ok else None


def invalid_record_reason(record: Any) -> tuple[str, dict[str, Any]]:
    """The failure reason (and details) for a trial function that returned something else."""
    shown = repr(record)[:300]
    problem = record_problem(record)
    return (f"the trial function returned no valid record (needs a dict with this trial's id and a status "
            f"in {', '.join(STATUSES)}{f'; {problem}' if problem else ''}): {shown}", {})


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
