"""Trial functions for testing the engine: they behave by the trial's ``seed`` instead of training.

seed // 100 picks the behaviour: 0 ok (quick), 1 raise, 2 os._exit(3), 3 segfault, 4 hang,
5 report partial metrics (auc, train_seconds) through on_partial, then hang, 6 ok after printing to stderr,
7 hang and ignore SIGTERM, 8 ok once the file named by COSTBENCH_FAKE_HOLD is gone (so a test can
interrupt a sweep at a known point), 9 wait for the latency lock at the file latency.lock in the trial's
cache_dir (a test holds it), then ok, 10 skipped, 11 fill the filesystem holding the file named by
COSTBENCH_FAKE_FILL (when it is set), then return an ok record of ~20 kB (which a full disk cannot take).
With a file fake-machine in the run directory, ok trials report that machine's environment (a resume "on another
machine"). With COSTBENCH_FAKE_PID_DIR set, each trial leaves its pid there, so a test can check that no trial
process outlives its sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from costbench.record import make_record, utc_now

QUICK_S = 0.05


def by_seed(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None,
            on_partial: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    phase = on_phase or (lambda _: None)
    started = utc_now()
    seed = trial["config"]["seed"]
    behaviour = seed // 100
    pid_dir = os.environ.get("COSTBENCH_FAKE_PID_DIR")
    if pid_dir:
        with open(os.path.join(pid_dir, f"{os.getpid()}.pid"), "w") as handle:
            handle.write(trial["id"])
    phase("data")
    if behaviour == 10:
        return make_record(trial, "skipped", reason="fake: cannot run honestly here", started_at=started)
    if behaviour == 11:
        if os.environ.get("COSTBENCH_FAKE_FILL"):
            _fill(Path(os.environ["COSTBENCH_FAKE_FILL"]))
        return make_record(trial, "ok", metrics={"auc": 0.5}, details={"padding": "x" * 20_000}, started_at=started)
    if behaviour == 1:
        raise ValueError(f"boom in trial seed {seed}")
    if behaviour == 2:
        sys.stderr.write("about to leave without a word\n")
        sys.stderr.flush()
        os._exit(3)
    if behaviour == 3:
        ctypes.string_at(0)
    if behaviour == 7:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if behaviour == 5 and on_partial is not None:
        phase("train 1/1")
        on_partial({"auc": 0.75, "train_seconds": 1.25, "note": "not a number: dropped"})
        phase("latency")
    if behaviour == 9:
        from costbench.executors.base import LOCK_WAIT_PHASE
        from costbench.measure.latency import latency_lock

        phase(LOCK_WAIT_PHASE)
        with latency_lock(Path(trial["cache_dir"]) / "latency.lock"):
            phase("latency")
    if behaviour in (4, 5, 7):
        if behaviour != 5:
            phase("train 1/1")
        while True:
            time.sleep(1)
    phase("train 1/1")
    while behaviour == 8 and os.path.exists(os.environ["COSTBENCH_FAKE_HOLD"]):
        time.sleep(QUICK_S)
    time.sleep(QUICK_S)
    if behaviour == 6:
        print("chatty trial", file=sys.stderr)
    import torch

    return make_record(trial, "ok", metrics={"auc": 0.5 + (seed % 100) / 1000, "p99_ms": float(seed % 7)},
                       details={"data": {"rows": trial["config"]["data"]["rows"]},
                                "torch_threads": torch.get_num_threads()},
                       started_at=started, resources={**(trial.get("resources") or {}),
                                                      "threads": torch.get_num_threads()},
                       environment=_fake_environment(trial))


def _fake_environment(trial: dict[str, Any]) -> dict[str, Any] | None:
    """With a file fake-machine in the run directory, the environment a trial on that machine would
    report (a file, not a variable: the forkserver keeps the environment it started with)."""
    marker = Path(trial.get("cache_dir") or ".").parent / "fake-machine"
    if not marker.exists():
        return None
    machine = marker.read_text().strip()
    return {"host": machine, "cpu": {"model": f"CPU of {machine}", "usable_cores": 1}}


@contextlib.contextmanager
def latency_lock_held(directory: Path, seconds: float) -> Iterator[Callable[[], None]]:
    """Hold the latency lock a behaviour-9 trial with cache_dir ``directory`` waits for, as another trial
    timing would; the function it yields lets go ``seconds`` later (call it once the trial waits)."""
    fd = os.open(directory / "latency.lock", os.O_RDONLY | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Timer(seconds, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd)))

    def let_go() -> None:
        if release.ident is None:  # once
            release.start()

    try:
        yield let_go
    finally:
        if release.ident is None:  # the trial never waited: let go now
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:
            release.join()


def _fill(path: Path) -> None:
    """Write to ``path`` until its filesystem has no byte left."""
    with open(path, "wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError:
                continue


def not_a_record(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None) -> Any:
    return {"status": "ok"}


def metrics_not_numbers(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None) -> Any:
    return make_record(trial, "ok", metrics={"auc": "high"})


def write_sweep(directory: Path, seeds: list[int], name: str = "fake", **extra: Any) -> Path:
    """A sweep file whose grid runs the behaviours above (one trial per seed)."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "data": {"rows": 1000}, "grid": {"seed": seeds}, **extra}))
    return path
