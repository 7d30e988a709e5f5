"""Serving latency and throughput, measured so a p99 can be trusted on a shared, noisy machine.

How (every choice below is recorded in the result, so a reader can tell how a number was made):

- Inputs are real rows of the split, cut into up to ``MAX_DISTINCT_BATCHES`` distinct batches per batch
  size and staged beforehand by the serving runtime's ``stage`` (torch tensors on the device, a numpy
  matrix for a tree library); calls cycle through them. Host-to-device copies are not
  in the latency: it times the served model, not the transport.
- Warm-up: the first (cold) call is timed and reported on its own; then chunks of ``serve.warmup``
  calls run until two chunk medians agree within ``STABLE_TOLERANCE`` (at most ``MAX_WARMUP_CHUNKS``).
- Each call is timed on its own: ``perf_counter_ns`` on CPU; on CUDA a pair of CUDA events around the
  call and a synchronize after it, so asynchronous launches cannot hide behind each other.
- At least ``serve.min_calls`` calls and ``serve.min_seconds`` per batch size, split across
  ``serve.rounds`` rounds that visit the batch sizes round-robin (each round starting one size later),
  so drift on the machine hits every batch size alike. Garbage collection is paused while timing, as
  ``timeit`` does.
- Percentiles of the pooled calls (``stats.PERCENTILE_METHOD``), the median of the per-round p50s
  beside them, and MLPerf LoadGen's conservative early-stopping p99 (``p99_upper_ms``).
- A fixed GEMM probe is timed before and after; ``probe.drift`` > ``NOISY_DRIFT`` marks the
  measurement noisy. The whole timing phase holds a machine-wide file lock, so parallel trials never
  time at the same moment; how long it waited is reported.
"""

from __future__ import annotations

import fcntl
import gc
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from costbench.data import Split
from costbench.locks import lock_exclusive
from costbench.measure.energy import EnergyMeter
from costbench.measure.environment import usable_cores
from costbench.measure.stats import PERCENTILE_METHOD, early_stopping_percentile, percentiles
from costbench.record import NOISY_DRIFT
from costbench.spec import ServeConfig

LOCK_PATH = Path(tempfile.gettempdir()) / "costbench-latency.lock"
MAX_DISTINCT_BATCHES = 16
STABLE_TOLERANCE = 0.10  # warm-up ends when two consecutive chunk medians differ by at most this
MAX_WARMUP_CHUNKS = 10
REWARM_CALLS = 3  # untimed calls when a round switches to a batch size, so the switch itself is not timed
PROBE_SIZE = 256
PROBE_REPS = 50

Inputs = tuple[torch.Tensor, ...]
TimedCall = Callable[[Callable[..., Any], Inputs], float]
Stage = Callable[[Split, Any], Inputs]  # rows of a split -> the serving runtime's inputs


@contextmanager
def latency_lock(path: Path | None = None, on_wait: Callable[[], None] | None = None,
                 on_acquired: Callable[[], None] | None = None) -> Iterator[float]:
    """Hold the machine-wide latency lock; yields the seconds spent waiting for it. ``on_wait`` is called
    when another trial holds it (so the executor can stop this trial's timeout clock) and ``on_acquired``
    once it is ours."""
    lock_path = path or LOCK_PATH
    start = time.perf_counter()
    # read-only + create: any user can lock a file another user created; flock needs no write access
    fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        lock_exclusive(fd, on_wait, on_acquired)
        try:
            yield time.perf_counter() - start
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def call_timer(device: torch.device) -> tuple[str, TimedCall]:
    """A function timing one call in milliseconds on this device, and the name of how it times."""
    if device.type == "cuda":
        stream = torch.cuda.current_stream(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed_cuda(fn: Callable[..., Any], inputs: Inputs) -> float:
            start.record(stream)
            fn(*inputs)
            end.record(stream)
            end.synchronize()  # one call at a time: the next launch never overlaps this one's kernels
            return start.elapsed_time(end)

        return "cuda_event_pair_sync_per_call", timed_cuda

    def timed_cpu(fn: Callable[..., Any], inputs: Inputs) -> float:
        begin = time.perf_counter_ns()
        fn(*inputs)
        return (time.perf_counter_ns() - begin) / 1e6

    return "perf_counter_ns", timed_cpu


def gemm_probe_ms(device: torch.device, timed: TimedCall, reps: int = PROBE_REPS) -> float:
    """Median time of a fixed small matmul: a reference that only moves when the machine does."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen).to(device)
    b = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen).to(device)
    for _ in range(5):
        timed(torch.mm, (a, b))
    return statistics.median(timed(torch.mm, (a, b)) for _ in range(reps))


def staged_batches(split: Split, batch: int, device: torch.device, stage: Stage | None = None) -> list[Inputs]:
    """Distinct batches of real rows, staged as the serving runtime takes them (default: torch tensors
    on the device); rows wrap around when the split is smaller."""
    rows = len(split)
    if rows == 0:
        raise ValueError("cannot measure latency on an empty split")
    count = max(1, min(MAX_DISTINCT_BATCHES, rows // batch))
    batches = []
    for i in range(count):
        index = (torch.arange(batch) + i * batch) % rows
        batches.append(stage(split, index) if stage else tuple(t[index].contiguous().to(device)
                                                               for t in split.inputs()))
    return batches


def _warm_up(fn: Callable[..., Any], batches: list[Inputs], timed: TimedCall, chunk: int) -> dict[str, Any]:
    """Cold call first, then chunks until the median settles."""
    cold_ms = timed(fn, batches[0])
    calls, previous, stable = 1, None, False
    for _ in range(MAX_WARMUP_CHUNKS):
        median = statistics.median(timed(fn, batches[(calls + i) % len(batches)]) for i in range(chunk))
        calls += chunk
        if previous is not None and abs(median - previous) <= STABLE_TOLERANCE * previous:
            stable = True
            break
        previous = median
    return {"cold_ms": cold_ms, "warmup_calls": calls, "warmup_stable": stable}


def summarize(samples_ms: Sequence[float], round_p50s_ms: Sequence[float], batch: int) -> dict[str, Any]:
    """The per-batch-size figures from the pooled per-call times (ms) and each round's p50."""
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = percentiles(values, (50, 90, 99))
    mean = float(values.mean())
    return {
        "n": int(values.size),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "p99_upper_ms": early_stopping_percentile(values, 0.99),
        "mean_ms": mean,
        "std_ms": float(values.std(ddof=1)),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "throughput": batch / (mean / 1000) if mean > 0 else None,
        "round_p50_ms": float(np.median(round_p50s_ms)),
        "round_p50s_ms": [float(x) for x in round_p50s_ms],
    }


def measure_latency(fn: Callable[..., Any], split: Split, serve: ServeConfig, device: torch.device | str,
                    *, lock_path: Path | None = None, stage: Stage | None = None,
                    on_wait: Callable[[], None] | None = None,
                    on_acquired: Callable[[], None] | None = None) -> dict[str, Any]:
    """Time ``fn`` on batches of ``split`` at every ``serve.batch_sizes``; see the module doc for how.

    Returns ``{"batch_sizes": {"<b>": {n, p50_ms, p90_ms, p99_ms, p99_upper_ms, mean_ms, std_ms, min_ms,
    max_ms, cold_ms, throughput, round_p50_ms, round_p50s_ms, seconds, distinct_batches, warmup_calls,
    warmup_stable, energy_j, energy_per_1k_j}}, "probe": {before_ms, after_ms, drift, noisy, ...},
    "timer", "percentile_method", "threads", "rounds", "lock_wait_s", "energy_method",
    "energy_why_unavailable"}``.
    """
    device = torch.device(device)
    sizes = list(dict.fromkeys(serve.batch_sizes))
    timer_name, timed = call_timer(device)
    calls_per_round = math.ceil(serve.min_calls / serve.rounds)
    seconds_per_round = serve.min_seconds / serve.rounds
    with torch.inference_mode():
        batches = {b: staged_batches(split, b, device, stage) for b in sizes}
        meters = {b: EnergyMeter(device) for b in sizes}
        samples: dict[int, list[float]] = {b: [] for b in sizes}
        round_p50s: dict[int, list[float]] = {b: [] for b in sizes}
        seconds = dict.fromkeys(sizes, 0.0)
        with latency_lock(lock_path, on_wait, on_acquired) as lock_wait_s:
            load_before = os.getloadavg()[0]
            probe_before = gemm_probe_ms(device, timed)
            warm = {b: _warm_up(fn, batches[b], timed, serve.warmup) for b in sizes}
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                for r in range(serve.rounds):
                    for b in sizes[r % len(sizes):] + sizes[:r % len(sizes)]:
                        times, spent = _one_round(fn, batches[b], timed, meters[b], calls_per_round,
                                                  seconds_per_round, start_at=len(samples[b]))
                        samples[b].extend(times)
                        round_p50s[b].append(percentiles(times, (50,))[0])
                        seconds[b] += spent
            finally:
                if gc_was_enabled:
                    gc.enable()
            probe_after = gemm_probe_ms(device, timed)
            load_after = os.getloadavg()[0]

    drift = abs(probe_after - probe_before) / probe_before
    by_batch = {}
    for b in sizes:
        stats = summarize(samples[b], round_p50s[b], b)
        joules = meters[b].joules
        stats.update(
            cold_ms=warm[b]["cold_ms"], warmup_calls=warm[b]["warmup_calls"],
            warmup_stable=warm[b]["warmup_stable"], seconds=seconds[b], distinct_batches=len(batches[b]),
            energy_j=joules, energy_per_1k_j=None if joules is None else joules / (stats["n"] * b) * 1000,
        )
        by_batch[str(b)] = stats
    first = meters[sizes[0]]
    return {
        "batch_sizes": by_batch,
        "probe": {"before_ms": probe_before, "after_ms": probe_after, "drift": drift,
                  "noisy": drift > NOISY_DRIFT, "threshold": NOISY_DRIFT,
                  "what": f"median of {PROBE_REPS} float32 {PROBE_SIZE}x{PROBE_SIZE} matmuls",
                  # a median shrugs off steady contention that still fattens the tail: show the load too
                  "loadavg_1m_before": load_before, "loadavg_1m_after": load_after,
                  "usable_cores": usable_cores()},
        "timer": timer_name,
        "percentile_method": PERCENTILE_METHOD,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "rounds": serve.rounds,
        "lock_wait_s": lock_wait_s,
        "energy_method": first.method,
        "energy_why_unavailable": first.why_unavailable,
    }


def _one_round(fn: Callable[..., Any], batches: list[Inputs], timed: TimedCall, meter: EnergyMeter,
               min_calls: int, min_seconds: float, start_at: int) -> tuple[list[float], float]:
    """One batch size's share of one round: re-warm, then time calls until both minimums are met."""
    for i in range(REWARM_CALLS):
        timed(fn, batches[(start_at + i) % len(batches)])  # timed only to synchronize; not kept
    times: list[float] = []
    with meter:
        begin = time.perf_counter()
        while len(times) < min_calls or time.perf_counter() - begin < min_seconds:
            times.append(timed(fn, batches[(start_at + len(times)) % len(batches)]))
        spent = time.perf_counter() - begin
    return times, spent
