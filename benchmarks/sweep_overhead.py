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
data: {source: synthetic, rows: 20000, positive_rate: 0.08, sequence_length: 8, seed: 7}
model: {family: mlp}
train: {epochs: 2, batch_size: 512}
serve: {batch_sizes: [1], warmup: 5, min_calls: 662, min_seconds: 0.0, rounds: 1}
threads: 1
grid:
  model.size: [xs, s]
  precision: [fp32, bf16]
  train.batch_size: [256, 512]
objectives: [auc:max, p99_ms:min]
"""


def timed_trial(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """run_trial, with the imports and the data cache load timed apart (run_trial reuses the data)."""
    entered = time.monotonic()
    import costbench.data.load as data_load
    from costbench.spec import DataConfig
    from costbench.trial import run_trial

    imported = time.monotonic()
    data = data_load.load_data(DataConfig.model_validate(trial["config"]["data"]), trial.get("cache_dir"))
    loaded = time.monotonic()
    data_load.load_data = lambda cfg, cache_dir: data  # this process ends with the trial
    record = run_trial(trial, on_phase)
    done = time.monotonic()
    record["details"]["bench"] = {"entered": entered, "imports_s": imported - entered,
                                  "data_load_s": loaded - imported, "work_s": done - loaded}
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
    harness = [r["details"]["harness"] for r in records]
    starts = [h["process_start_s"] for h in harness]
    launched = [b["entered"] - s for b, s in zip(bench, starts, strict=True)]
    # the trial loop: first launch to the last trial's process collected (its record is written next)
    loop = max(t + h["trial_wall_s"] for t, h in zip(launched, harness, strict=True)) - min(launched)
    work = sum(b["work_s"] for b in bench)
    once = max(0.0, starts[0] - statistics.median(starts[1:]))  # the forkserver's start, once per sweep
    rest = [h["trial_wall_s"] - b["work_s"] - s - b["imports_s"] - b["data_load_s"]
            for b, h, s in zip(bench, harness, starts, strict=True)]
    parts = {
        "process start": starts[1:],
        "imports in the trial process": [b["imports_s"] for b in bench[1:]],
        "data cache load": [b["data_load_s"] for b in bench[1:]],
        "result back, process exit": rest[1:],
        "record write (fsync'd append)": writes,
    }
    print(f"{len(records)} trials, {args.workers} worker(s), {harness[0]['threads']} thread(s); median of "
          "trials 2..8 (the first also starts the forkserver and builds the data cache)")
    for name, values in parts.items():
        print(f"  {name:<32}{statistics.median(values) * 1000:8.1f} ms   (max {max(values) * 1000:.1f})")
    per_trial = sum(statistics.median(v) for v in parts.values())
    print(f"harness overhead per trial        {per_trial:.3f} s (goal < 1.5 s)")
    print(f"first trial: process start {starts[0]:.2f} s, data cache build {bench[0]['data_load_s']:.2f} s")
    print(f"trials' own work (run_trial)      {work:.2f} s in all")
    print(f"trial loop wall                   {loop:.2f} s -> ratio {loop / work:.3f}; without the one-off "
          f"forkserver start ({once:.2f} s): {(loop - once) / work:.3f} (goal < 1.15 with one worker)")
    print(f"whole run_sweep                   {whole:.2f} s -> ratio {whole / work:.3f} (adds the environment "
          "and the report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
