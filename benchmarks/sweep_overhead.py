"""What the sweep harness costs per trial, beside the trial's own work.

Runs a sweep of 8 tiny real trials (costbench.trial.run_trial) with one worker through
``engine.run_sweep``, then prints:

- per-trial harness overhead: process start (fork from the forkserver until the trial function
  runs), data cache load (the prepared data read back from the sweep's cache) and record write
  (one fsync'd append); goal: under 1.5 s per trial;
- the ratio of the trial loop's wall time (first launch to last record) to the sum of the
  trials' own work (run_trial, data load excluded); goal: under 1.15 with one worker.

Usage: .venv/bin/python benchmarks/sweep_overhead.py [--workers N] [--keep DIR]

Each trial goes through ``timed_trial`` (this file, given to the executor by the COSTBENCH_TRIAL_FN
testing hook): it times the data load and the trial apart and stamps both into the record's details.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRIALS = 8
SWEEP = """
name: sweep-overhead
data: {source: synthetic, rows: 5000, positive_rate: 0.1, sequence_length: 8, seed: 7}
model: {family: mlp}
train: {epochs: 1, batch_size: 512}
serve: {batch_sizes: [1], warmup: 5, min_calls: 662, min_seconds: 0.0, rounds: 1}
threads: 1
grid:
  model.size: [xs, s]
  precision: [fp32, bf16]
  train.batch_size: [256, 512]
objectives: [auc:max, p99_ms:min]
"""


def timed_trial(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """run_trial, with the data cache load timed apart (run_trial then reuses the loaded data)."""
    import costbench.data.load as data_load

    from costbench.spec import DataConfig
    from costbench.trial import run_trial

    started = time.monotonic()
    data = data_load.load_data(DataConfig.model_validate(trial["config"]["data"]), trial.get("cache_dir"))
    loaded = time.monotonic()
    data_load.load_data = lambda cfg, cache_dir: data  # this process ends with the trial
    record = run_trial(trial, on_phase)
    done = time.monotonic()
    record["details"]["bench"] = {"started": started, "data_load_s": loaded - started,
                                  "work_s": done - loaded, "done": done}
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the run here instead of a temporary directory")
    args = parser.parse_args()

    from rich.console import Console

    from costbench.engine import TRIAL_FN_ENV, SweepOptions, run_sweep
    from costbench.spec import load_sweep
    from costbench.store import RunStore, read_records

    os.environ[TRIAL_FN_ENV] = "sweep_overhead:timed_trial"  # this file's directory is sys.path[0]
    with tempfile.TemporaryDirectory(prefix="costbench-overhead-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        sweep_file = root / "sweep.in.yaml"
        sweep_file.write_text(SWEEP)
        sweep = load_sweep(sweep_file, cache_dir=str(root / "cache"))
        assert len(sweep.trials) == TRIALS
        log = io.StringIO()
        start = time.monotonic()
        code = run_sweep(sweep, SweepOptions(out=root / "run", workers=args.workers, fresh=True),
                         console=Console(file=log, width=160), stderr=Console(file=sys.stderr))
        whole = time.monotonic() - start
        run_dir = max(root.glob("run*"), key=lambda p: p.stat().st_mtime)
        records, _ = read_records(run_dir)
        if code != 0 or any(r["status"] != "ok" for r in records):
            print(log.getvalue())
            for r in records:
                print(r["id"], r["status"], r["reason"])
            return 1

        writes = []
        with RunStore(root / "write-probe") as probe:
            for record in records:
                t = time.perf_counter()
                probe.append(record)
                writes.append(time.perf_counter() - t)

    bench = [r["details"]["bench"] for r in records]
    starts = [r["details"]["harness"]["process_start_s"] for r in records]
    launched = [b["started"] - s for b, s in zip(bench, starts, strict=True)]
    loop = max(b["done"] for b in bench) - min(launched)
    work = sum(b["work_s"] for b in bench)
    loads = [b["data_load_s"] for b in bench]
    steady_start = statistics.median(starts[1:])
    per_trial = steady_start + statistics.median(loads[1:]) + statistics.median(writes)

    print(f"{len(records)} trials, {args.workers} worker(s), {records[0]['details']['harness']['threads']} thread(s)")
    print(f"process start      first {starts[0]:.3f} s (includes starting the forkserver), "
          f"then median {steady_start:.3f} s (min {min(starts[1:]):.3f}, max {max(starts[1:]):.3f})")
    print(f"data cache load    first {loads[0]:.3f} s (builds the cache), "
          f"then median {statistics.median(loads[1:]):.3f} s")
    print(f"record write       median {statistics.median(writes) * 1000:.2f} ms (fsync'd append)")
    print(f"harness overhead   {per_trial:.3f} s per trial (goal < 1.5 s)")
    print(f"trial work         sum {work:.2f} s (run_trial without the data load)")
    once = max(0.0, starts[0] - steady_start)  # starting the forkserver: once per sweep, not per trial
    print(f"trial loop wall    {loop:.2f} s  -> ratio {loop / work:.3f}; without the one-off forkserver start "
          f"({once:.2f} s) {(loop - once) / work:.3f} (goal < 1.15 with one worker)")
    print(f"whole run_sweep    {whole:.2f} s  -> ratio {whole / work:.3f} (adds environment, report rendering)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
