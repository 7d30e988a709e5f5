"""Run each trial in its own process on this machine, started from a forkserver that preloads torch.

A process per trial makes a trial's peak memory its own, keeps torch's global settings from leaking
into the next trial, and turns a crash (segfault, OOM kill, ``os._exit``, a hang) into a ``failed``
record for that trial alone. Forking from a server that has already imported torch (and
torch._dynamo, which the first optimiser imports) keeps the start of a trial to a fraction of a
second instead of the seconds a fresh interpreter needs; ``details['harness']['process_start_s']``
of every record says what it cost.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

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
from costbench.resources import gpu_count, plan_resources
from costbench.spec import Trial

# Imported once, in the forkserver, so that no trial pays for them: torch, torch._dynamo (the first
# optimiser step imports it), this module, and the rooms run_trial imports (pandas comes with the data).
# A name missing here costs start time, never correctness; none of these may initialise CUDA on import
# (a forked child cannot use CUDA that its parent initialised).
PRELOAD = ("torch", "torch._dynamo", __name__, "costbench.trial", "costbench.data.load", "costbench.models",
           "costbench.train", "costbench.evaluate", "costbench.precision", "costbench.measure.latency",
           "costbench.measure.memory", "costbench.measure.energy", "costbench.measure.cost")
GRACE_S = 3.0  # between SIGTERM and SIGKILL when a trial is ended
START_GRACE_S = 60.0  # the most a trial's process may take to start before its timeout counts it


def start_forkserver(trial_fn: str = TRIAL_FUNCTION) -> Any:
    """The forkserver context, its server started once per driver with PRELOAD and the trial's module.

    Starting returns at once; the server imports in the background, so calling this early hides the
    import time behind the driver's own work. The server starts with SIGINT ignored: a Ctrl-C reaches
    the whole process group, and the driver alone decides what it means (a server still importing
    torch would otherwise print a KeyboardInterrupt traceback of its own).
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, trial_fn.partition(":")[0]])
    if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
        forkserver.ensure_running()
        return ctx
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # an ignored signal stays ignored across exec
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)
    return ctx


# ----------------------------------------------------------------------------------- the child


@dataclass(frozen=True)
class _Job:
    """What a child needs: picklable, so the forkserver can hand it over."""

    trial: dict[str, Any]
    trial_fn: str
    threads: int
    log_path: str
    cuda_visible_devices: str | None


def _child_main(job: _Job, conn: Connection, lifeline: Connection) -> None:
    """Runs in the trial's process: send ('ready'), ('phase', p) and ('partial', metrics) as they come,
    then ('result', r) or ('error', e)."""
    entered = time.monotonic()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the driver decides
    threading.Thread(target=_die_with_driver, args=(lifeline,), daemon=True, name="costbench-lifeline").start()
    _redirect_output(job.log_path)
    faulthandler.enable()  # a segfault leaves a Python traceback in the log
    if job.cuda_visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = job.cuda_visible_devices
    threads = job.trial["config"].get("threads") or job.threads
    try:
        import torch

        torch.set_num_threads(threads)
        conn.send(("ready", entered, threads))
        fn = resolve_trial_fn(job.trial_fn)
        record = call_trial_fn(fn, job.trial, on_phase=lambda phase: conn.send(("phase", str(phase))),
                               on_partial=lambda metrics: conn.send(("partial", partial_metrics(metrics))))
        conn.send(("result", record))
    except BaseException as exc:  # every way a trial can fail becomes its record
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        tail = "".join(lines).rstrip().splitlines()[-TAIL_LINES:]
        conn.send(("error", {"type": type(exc).__name__, "message": str(exc), "traceback": tail}))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _die_with_driver(lifeline: Connection) -> None:
    """End this trial the moment the driver is gone (even by kill -9): nobody would read its result.

    The driver alone holds the other end of the lifeline, so the read ends with EOF only when the
    driver dies. (The forkserver cannot do this: every trial it forks keeps it alive.)
    """
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os.kill(os.getpid(), signal.SIGKILL)


def _redirect_output(log_path: str) -> None:
    """The trial's stdout and stderr go to a file: they must not break the progress display, and the
    last lines explain a process that died without a word."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# ----------------------------------------------------------------------------------- the parent


@dataclass
class _Running:
    trial: Trial
    process: Any  # multiprocessing.Process
    conn: Connection
    log_path: Path
    launched: float
    started_at: str
    deadline: float | None
    concurrent: int = 1
    phase: str | None = None
    ready: float | None = None
    threads: int | None = None
    outcome: tuple[str, Any] | None = None  # ('result', record) or ('error', info)
    closed: bool = False
    partial: dict[str, Any] = field(default_factory=dict)  # metrics the trial reported before its end
    lock: LockWait = field(default_factory=LockWait)

    def overdue(self, now: float) -> bool:
        return self.deadline is not None and not self.lock.waiting and now >= self.deadline

    def on_phase(self, phase: str, now: float) -> None:
        """A wait for the latency lock stops the timeout clock until the next phase."""
        waited = self.lock.phase(phase, now)
        if self.deadline is not None:
            self.deadline += waited
        self.phase = phase


class LocalExecutor(Executor):
    """A pool of one-trial processes on this machine (see the module docstring for why)."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None,
                 trial_timeout: float | None = None, trial_fn: str = TRIAL_FUNCTION) -> None:
        self.workers = workers
        self.threads = threads
        self.trial_timeout = trial_timeout
        self.trial_fn = trial_fn
        self._cancelled = False
        self._wake_r, self._wake_w = os.pipe()
        self._tmp = tempfile.TemporaryDirectory(prefix="costbench-")
        self._lifeline: Connection | None = None
        start_forkserver(trial_fn)  # its imports overlap with whatever the driver does before run()

    def cancel(self) -> None:
        """Stop launching and end running trials; safe to call from a signal handler."""
        self._cancelled = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._close_lifeline()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._tmp.cleanup()

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None

    def run(self, trials: Sequence[Trial]) -> Iterator[TrialEvent]:
        plan = plan_resources(trials, self.workers, self.threads)
        gpus = gpu_count(trials)
        ctx = start_forkserver(self.trial_fn)
        self._close_lifeline()
        lifeline, self._lifeline = ctx.Pipe(duplex=False)  # we hold the sending end until close()
        pending = deque(trials)
        running: list[_Running] = []
        free_slots = list(range(plan.workers))
        slots: dict[str, int] = {}
        while (pending or running) and not self._cancelled:
            while pending and free_slots and not self._cancelled:
                trial = pending.popleft()
                slots[trial.id] = free_slots.pop(0)
                spread = gpus > 1 and trial.config["device"] in ("cuda", "auto")  # cuda:N chose its GPU
                cuda = str(slots[trial.id] % gpus) if spread else None
                running.append(self._launch(ctx, trial, plan.threads, cuda, lifeline))
                for job in running:
                    job.concurrent = max(job.concurrent, len(running))
                yield TrialEvent("started", trial.id)
            self._wait(running)
            for job in list(running):
                dead = job.process.exitcode is not None  # before draining: all it sent is then readable
                yield from self._drain(job)
                record = self._finished(job, dead)
                if record is not None:
                    running.remove(job)
                    free_slots.append(slots.pop(job.trial.id))
                    free_slots.sort()
                    yield TrialEvent("finished", job.trial.id, record=record)
        yield from self._stop(running)

    def _stop(self, running: list[_Running]) -> Iterator[TrialEvent]:
        """After cancel(): keep the records that already arrived, end the other trials without one."""
        for job in running:
            for _ in self._drain(job):
                pass
        done = [job for job in running if job.outcome is not None]
        self._end([job for job in running if job not in done])
        for job in done:
            record = self._finished(job, dead=True)
            if record is not None:
                yield TrialEvent("finished", job.trial.id, record=record)

    def _launch(self, ctx: Any, trial: Trial, threads: int, cuda: str | None, lifeline: Connection) -> _Running:
        log_path = Path(self._tmp.name) / f"{trial.id}.log"
        log_path.write_bytes(b"")
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        job = _Job(trial=trial.to_json(), trial_fn=self.trial_fn, threads=threads, log_path=str(log_path),
                   cuda_visible_devices=cuda)
        process = ctx.Process(target=_child_main, args=(job, child_conn, lifeline), name=f"costbench-trial-{trial.id}",
                              daemon=False)
        launched = time.monotonic()
        process.start()
        child_conn.close()
        # until the trial says it is ready, the forkserver may still be importing torch (seconds, once)
        deadline = launched + self.trial_timeout + START_GRACE_S if self.trial_timeout else None
        return _Running(trial=trial, process=process, conn=parent_conn, log_path=log_path, launched=launched,
                        started_at=utc_now(), deadline=deadline)

    def _wait(self, running: list[_Running]) -> None:
        handles: list[Any] = [self._wake_r]
        for job in running:
            handles.append(job.process.sentinel)
            if not job.closed:
                handles.append(job.conn)
        deadlines = [job.deadline for job in running if job.deadline is not None and not job.lock.waiting]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = wait(handles, timeout)
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)

    def _drain(self, job: _Running) -> Iterator[TrialEvent]:
        """Read every message the child has sent so far."""
        while not job.closed and job.outcome is None:
            try:
                if not job.conn.poll():
                    return
                message = job.conn.recv()
            except (EOFError, OSError):
                job.closed = True
                return
            except Exception as exc:  # a message this process cannot unpickle
                job.outcome = ("error", {"type": type(exc).__name__, "traceback": [],
                                         "message": f"the trial's message could not be read: {exc}"})
                return
            kind = message[0]
            if kind == "ready":
                job.ready, job.threads = message[1], message[2]
                if self.trial_timeout:  # the clock runs from the trial's start, not the forkserver's imports
                    job.deadline = job.ready + self.trial_timeout
            elif kind == "phase":
                job.on_phase(message[1], time.monotonic())
                yield TrialEvent("phase", job.trial.id, phase=job.phase)
            elif kind == "partial":
                job.partial.update(message[1])
            else:
                job.outcome = (kind, message[1])

    def _finished(self, job: _Running, dead: bool) -> dict[str, Any] | None:
        """The trial's record once it is over (result, error, death or timeout); None while it runs."""
        if job.outcome is not None:
            job.process.join(GRACE_S)
            if job.process.is_alive():
                self._end([job])
            kind, payload = job.outcome
            record = valid_record(payload, job.trial.id) if kind == "result" else None
            if record is None:
                reason, details = (invalid_record_reason(payload) if kind == "result" else
                                   (f"{payload['type']}: {payload['message']}", {"error": payload}))
                record = self._failed(job, reason, details)
        elif dead:
            job.process.join()
            tail = _tail(job.log_path, lines=200)
            record = self._failed(job, _death(job.process.exitcode, tail), {"output_tail": tail[-TAIL_LINES:]})
        elif job.overdue(time.monotonic()):
            self._end([job])
            record = self._failed(job, timeout_reason(job.phase, self.trial_timeout),
                                  {"output_tail": _tail(job.log_path)})
        else:
            return None
        job.conn.close()
        job.lock.stop(time.monotonic())  # a wait the trial never ended counts up to now
        record["concurrent_trials"] = job.concurrent
        record.setdefault("details", {})["harness"] = {
            "executor": self.name,
            "process_start_s": None if job.ready is None else round(job.ready - job.launched, 4),
            "threads": job.threads,
            "trial_wall_s": round(time.monotonic() - job.launched, 4),
            "lock_wait_s": round(job.lock.total_s, 4),
        }
        return record

    def _failed(self, job: _Running, reason: str, details: dict[str, Any]) -> dict[str, Any]:
        """A failed record that keeps what the trial measured before it ended (``on_partial``)."""
        record = make_record(job.trial.to_json(), "failed", reason=reason, details=details,
                             metrics=dict(job.partial), started_at=job.started_at,
                             concurrent_trials=job.concurrent)
        record["pid"] = job.process.pid
        return record

    def _end(self, jobs: list[_Running]) -> None:
        """SIGTERM, then SIGKILL what is still alive after the grace period."""
        for job in jobs:
            if job.process.is_alive():
                job.process.terminate()
        deadline = time.monotonic() + GRACE_S
        for job in jobs:
            job.process.join(max(0.0, deadline - time.monotonic()))
            if job.process.is_alive():
                job.process.kill()
                job.process.join()
            job.conn.close()


def _death(exitcode: int | None, tail: list[str]) -> str:
    """One line: how the process ended, and where (a fatal signal) or what it said last (an exit)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        site = _crash_site(tail)
        return f"trial process killed by {name}" + (f" in {site}" if site else "") + (
            " (out of memory?)" if name == "SIGKILL" else "")
    last = next((line.strip() for line in reversed(tail) if line.strip()), None)
    return f"trial process exited with code {exitcode} before returning a record" + (
        f"; last output: {last[:200]}" if last else "")


def _crash_site(tail: list[str]) -> str | None:
    """The innermost Python frame faulthandler printed for a fatal signal, e.g. 'costbench/train.py:88 in step'."""
    for i, line in enumerate(tail):  # the thread that took the signal; others are listed too
        if line.startswith("Current thread") and i + 1 < len(tail):
            frame = re.match(r'\s*File "(.+)", line (\d+) in (\S+)', tail[i + 1])
            if frame:
                path = Path(frame[1])
                return f"{path.parent.name}/{path.name}:{frame[2]} in {frame[3]}"
    return None


def _tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 8192))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.rstrip().splitlines()[-lines:]
