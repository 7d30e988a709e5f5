"""Run trials as Ray tasks, so a sweep runs unchanged on a cluster users already have.

Ray does the scheduling, placement and process management; this module only maps a trial to a task
and a task's fate to a record. Each trial is one task of a function declared with
``ray.remote(max_calls=1)``: a fresh worker process per trial, so its peak memory is its own and a
crash ends only that trial. Results stream back to the driver, which alone writes the store.

The trial function ("module:function") must be importable on every node: install costbench on each
node, or ship it with ``runtime_env`` (e.g. ``{"py_modules": [...]}`` or ``{"pip": [...]}``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError, WorkerCrashedError

from costbench.errors import UserError
from costbench.executors.base import (
    TAIL_LINES,
    TRIAL_FUNCTION,
    Executor,
    LockWait,
    TrialEvent,
    call_trial_fn,
    invalid_record_reason,
    partial_metrics,
    resolve_trial_fn,
    timeout_reason,
    valid_record,
)
from costbench.record import make_record, utc_now
from costbench.spec import Trial

POLL_SECONDS = 0.25  # how often the driver looks at timeouts, cancellation and notes from trials
CONNECT_SECONDS = 5.0  # a head node that does not answer a TCP connect in this long is not there
REASON_CHARS = 500  # Ray's messages can run to pages; a record's reason stays one readable line


@ray.remote(num_cpus=0)
class _NoteBoard:
    """Collects notes from running trials (started on which host and node, phases, partial metrics)."""

    def __init__(self) -> None:
        self._notes: list[tuple[str, str, Any]] = []

    def note(self, trial_id: str, kind: str, value: Any) -> None:
        self._notes.append((trial_id, kind, value))

    def drain(self) -> list[tuple[str, str, Any]]:
        notes, self._notes = self._notes, []
        return notes


@ray.remote(max_calls=1)
def _run_trial_task(trial: dict[str, Any], trial_fn: str, board: Any, submitted: float) -> Any:
    """One trial in a fresh worker process; returns its record and how long it waited to start."""
    waited = time.time() - submitted  # wall clocks of driver and node: exact on one machine
    where = (socket.gethostname(), os.getpid(), ray.get_runtime_context().get_node_id())
    with contextlib.suppress(RayError):  # waited for, so even a crash says where it ran
        ray.get(board.note.remote(trial["id"], "started", where))
    function = resolve_trial_fn(trial_fn)
    record = call_trial_fn(
        function, trial, on_phase=lambda phase: board.note.remote(trial["id"], "phase", str(phase)),
        on_partial=lambda metrics: board.note.remote(trial["id"], "partial", partial_metrics(metrics)))
    return record, round(waited, 4)


@dataclass
class _Running:
    """What the driver knows of one submitted trial."""

    trial: Trial
    threads: int
    started: float | None = None  # monotonic, when its task began
    started_at: str | None = None
    host: str | None = None
    pid: int | None = None
    node: str | None = None
    concurrent: int = 1
    phase: str | None = None
    partial: dict[str, Any] = field(default_factory=dict)
    lock: LockWait = field(default_factory=LockWait)  # as noted here, so to within a poll of the driver


class RayExecutor(Executor):
    """Trials as Ray tasks on a cluster (``address``) or on a Ray instance started here.

    ``workers`` is accepted for interchangeability with the local executor but not used: Ray decides
    how many trials run at once from each trial's resources (``num_cpus`` = its threads, one GPU for a
    CUDA trial) and what the cluster has. On one machine without a cluster, prefer the local executor:
    it starts a trial in a fraction of the time. If this process is already connected to Ray, that
    connection is used (and ``address``/``runtime_env`` are not applied) and left open on close.
    """

    name = "ray"

    def __init__(
        self,
        *,
        workers: int | None = None,
        threads: int | None = None,
        trial_timeout: float | None = None,
        retries: int | None = 0,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        trial_fn: str = TRIAL_FUNCTION,
    ) -> None:
        del workers  # Ray schedules by resources; see the class docstring
        self.threads = threads
        self.trial_timeout = trial_timeout
        self.retries = retries or 0
        self.trial_fn = trial_fn
        self._refs: dict[Any, _Running] = {}
        self._cancelled = False
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            _connect(address, runtime_env)

    def run(self, trials: Sequence[Trial]) -> Iterator[TrialEvent]:
        board = _NoteBoard.remote()
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        try:
            for trial in trials:
                options, why_not = task_options(trial, nodes, self.threads, self.retries)
                if why_not:
                    yield TrialEvent("finished", trial.id,
                                     record=make_record(trial.to_json(), "skipped", reason=why_not))
                    continue
                task = _run_trial_task.options(**options)
                ref = task.remote(trial.to_json(), self.trial_fn, board, time.time())
                self._refs[ref] = _Running(trial, threads=options["num_cpus"])
            while self._refs and not self._cancelled:
                done, _ = ray.wait(list(self._refs), num_returns=1, timeout=POLL_SECONDS)
                board, notes = _drain(board)
                yield from self._take_notes(notes)
                if board is None:  # no more notes: count timeouts from now for trials not yet seen
                    for job in self._refs.values():
                        yield from self._mark_started(job)
                for ref in done:
                    job = self._refs.pop(ref)
                    yield from self._mark_started(job)
                    yield TrialEvent("finished", job.trial.id, record=self._outcome(ref, job))
                yield from self._end_overdue()
            if self._refs:  # cancelled: keep the records that already arrived, end the other trials
                done, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
                for ref in done:
                    job = self._refs.pop(ref)
                    yield TrialEvent("finished", job.trial.id, record=self._outcome(ref, job))
        finally:
            self._end_all()
            if board is not None and ray.is_initialized():
                ray.kill(board)

    def cancel(self) -> None:
        """Stop: ``run`` force-cancels the pending tasks (Ray kills their workers) within a poll and
        returns. Only sets a flag, so it is safe from a signal handler or another thread."""
        self._cancelled = True

    def close(self) -> None:
        """End what still runs; disconnect from Ray (ending a local instance) only if we connected."""
        self._end_all()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    def _end_all(self) -> None:
        """Force-cancel what is pending (unless Ray is already gone, taking the tasks with it)."""
        if ray.is_initialized():
            for ref in self._refs:
                ray.cancel(ref, force=True)
        self._refs.clear()

    def _take_notes(self, notes: list[tuple[str, str, Any]]) -> Iterator[TrialEvent]:
        running = {job.trial.id: job for job in self._refs.values()}
        for trial_id, kind, value in notes:
            job = running.get(trial_id)
            if job is None:  # a late note of a trial already over
                continue
            if kind == "started" and job.host is None:
                job.host, job.pid, job.node = value
                on_host = [other for other in running.values() if other.host == job.host]
                for other in on_host:
                    other.concurrent = max(other.concurrent, len(on_host))
            yield from self._mark_started(job)
            if kind == "phase":
                job.lock.phase(value, time.monotonic())
                job.phase = value
                yield TrialEvent("phase", trial_id, phase=value)
            elif kind == "partial" and isinstance(value, dict):
                job.partial.update(value)

    def _mark_started(self, job: _Running) -> Iterator[TrialEvent]:
        """A 'started' event once per trial, before any of its phases or its end."""
        if job.started is None:
            job.started, job.started_at = time.monotonic(), utc_now()
            yield TrialEvent("started", job.trial.id)

    def _end_overdue(self) -> Iterator[TrialEvent]:
        """Kill trials running longer than ``trial_timeout`` (lock waits not counted) and report them failed."""
        if self.trial_timeout is None:
            return
        now = time.monotonic()
        for ref, job in list(self._refs.items()):
            if job.started is not None and not job.lock.waiting and \
                    now - job.started - job.lock.total_s > self.trial_timeout:
                ray.cancel(ref, force=True)
                del self._refs[ref]
                record = self._failed(job, timeout_reason(job.phase, self.trial_timeout), {})
                yield TrialEvent("finished", job.trial.id, record=self._with_harness(record, job, None))

    def _outcome(self, ref: Any, job: _Running) -> dict[str, Any]:
        """The trial's own record, or a failed one saying how its task ended."""
        waited = None
        try:
            payload, waited = ray.get(ref)
            record = valid_record(payload, job.trial.id)
            if record is None:
                record = self._failed(job, *invalid_record_reason(payload))
        except RayTaskError as exc:  # the trial function raised: report its own exception
            cause = exc.cause if exc.cause is not None else exc
            error = {"type": type(cause).__name__, "message": str(cause),
                     "traceback": str(exc).rstrip().splitlines()[-TAIL_LINES:]}
            record = self._failed(job, f"{error['type']}: {_first_line(cause)}", {"error": error})
        except WorkerCrashedError as exc:
            where = f" (pid {job.pid} on {job.host})" if job.host else ""
            record = self._failed(job, f"worker crashed{where}: {_first_line(exc)}", {})
        except RayError as exc:  # node died, out of memory, runtime_env setup failed, ...
            record = self._failed(job, f"{type(exc).__name__}: {_first_line(exc)}", {})
        return self._with_harness(record, job, waited)

    def _failed(self, job: _Running, reason: str, details: dict[str, Any]) -> dict[str, Any]:
        record = make_record(job.trial.to_json(), "failed", reason=reason, details=details,
                             metrics=dict(job.partial), started_at=job.started_at)
        if job.host is not None:
            record["host"], record["pid"] = job.host, job.pid  # where it ran, not the driver
        return record

    def _with_harness(self, record: dict[str, Any], job: _Running, waited: float | None) -> dict[str, Any]:
        """What the executor saw, as the local executor reports it, plus where Ray ran the trial."""
        job.lock.stop(time.monotonic())
        record["concurrent_trials"] = job.concurrent
        record.setdefault("details", {})["harness"] = {
            "executor": self.name,
            "threads": job.threads,
            "node": job.node,
            "submit_to_start_s": waited,  # queueing, worker process start and imports
            "trial_wall_s": None if job.started is None else round(time.monotonic() - job.started, 4),
            "lock_wait_s": round(job.lock.total_s, 4),
        }
        return record


def task_options(trial: Trial, nodes: list[dict[str, float]], threads: int | None,
                 retries: int) -> tuple[dict[str, Any], str | None]:
    """Ray options for one trial, or why no node (given by its resources) can ever run it.

    A trial that fits no node would wait forever, so it is skipped with the reason instead (an
    autoscaling cluster that would add such a node is not foreseen here).
    """
    config = trial.config
    device = str(config.get("device", "cpu"))
    if device.startswith("cuda:") and device != "cuda:0":
        return {}, f"device {device}: under Ray each trial gets one GPU that Ray picks; use device: cuda"
    any_gpu = any(node.get("GPU", 0) >= 1 for node in nodes)
    gpus = 1 if device.startswith("cuda") or (device == "auto" and any_gpu) else 0
    cpus = config.get("threads") or threads or 1
    if not any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
        need = f"{cpus} CPU" + (" and 1 GPU" if gpus else "")
        have = ", ".join(f"{node.get('CPU', 0):g} CPU {node.get('GPU', 0):g} GPU" for node in nodes)
        return {}, f"no node of the Ray cluster has {need} (nodes: {have or 'none'})"
    return {"num_cpus": cpus, "num_gpus": gpus, "max_retries": retries, "retry_exceptions": False}, None


def _connect(address: str | None, runtime_env: dict[str, Any] | None) -> None:
    """Join the cluster at ``address`` (or $RAY_ADDRESS); without either, start a local Ray instance.

    "auto" joins the cluster that ``ray start`` began on this machine, as in Ray itself.
    """
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    _check_reachable(target)
    try:
        ray.init(address=target, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 runtime_env=runtime_env)
    except (ConnectionError, RuntimeError) as exc:  # e.g. a dead cluster, a Ray version mismatch
        where = "--address" if target != "local" else None
        raise UserError(f"cannot join the Ray cluster at {target}: {_first_line(exc)}", where=where) from None


def _check_reachable(address: str) -> None:
    """Fail in seconds on a wrong host:port; ray.init would retry for minutes before giving up."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "local", "auto" and ray:// addresses are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); give the head "
                        "node's host:port as printed by `ray start --head`", where="--address") from None


def _drain(board: Any) -> tuple[Any, list[tuple[str, str, Any]]]:
    """The notes since the last drain; a lost board (its node died) means no more notes."""
    if board is None:
        return None, []
    try:
        return board, ray.get(board.drain.remote())
    except RayError:
        return None, []


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else repr(exc))[:REASON_CHARS]
