"""Run directories as the v0.2 driver leaves them (run.json, environments/, schema-2 records), built by hand.

No sweep is expanded here: every id, metric and environment is written out, so each test knows its answer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

ENV = {"schema": 1, "host": "vm", "cpu": {"model": "Intel(R) Xeon(R) Processor", "logical_cores": 2, "usable_cores": 2,
                                         "flags": {"avx2": True, "avx512f": True, "amx_int8": False}},
       "gpus": [], "threads": 1, "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "numpy": "2.4.6"},
       "costbench": "0.2.0"}

BASE_CONFIG: dict[str, Any] = {
    "data": {"source": "synthetic", "rows": 1000, "seed": 7},
    "model": {"family": "mlp", "size": "s"},
    "train": {"epochs": 3, "batch_size": 512},
    "serve": {"batch_sizes": [1, 64], "batch_size_for_objective": None},
    "precision": "fp32", "device": "cpu", "threads": 1,
    "prices": {"cpu_core_hour_usd": 0.05, "gpu_hour_usd": 3.5}, "seed": 0,
}


def metrics(auc: float, p99: float, *, p50: float | None = None, cost: float = 2e-5, model_mem: float | None = 5.0,
            peak: float = 390.0, **more: Any) -> dict[str, Any]:
    """Metrics of one ok trial; p50 defaults to p99 / 2 (a steady tail)."""
    p50 = p99 / 2 if p50 is None else p50
    values = {"auc": auc, "p50_ms": p50, "p99_ms": p99, "p50_ms@1": p50, "p99_ms@1": p99,
              "throughput": 1000 / p50, "throughput@1": 1000 / p50, "p99_ms@64": 8 * p99,
              "throughput@64": 64000 / (8 * p99), "train_cost_usd": cost, "train_peak_mem_mb": peak,
              "train_mem_delta_mb": (model_mem or 0) + 3, "serve_cost_per_million_usd": cost * 90,
              "model_bytes": 23616, "probe_drift": 0.01, "round_spread": 0.05}
    if model_mem is not None:
        values.update(model_train_mem_mb=model_mem, process_baseline_mem_mb=peak - model_mem)
    values.update(more)
    return values


def record(trial_id: str, axes: dict[str, Any], status: str = "ok", *, metrics: dict[str, Any] | None = None,
           reason: str | None = None, env_id: str = "e0e0e0e0e0e0", data_id: str = "d0d0d0d0d0d0",
           schema: int = 2, **config_changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE_CONFIG)
    for key, value in {**axes, **config_changes}.items():
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return {"schema": schema, "id": trial_id, "group": f"g{trial_id}", "repeat": 0, "status": status,
            "reason": reason, "axes": axes, "config": config, "metrics": metrics or {},
            "details": {"device": "cpu", "threads": 1}, "started_at": "2026-12-01T10:00:00+00:00",
            "finished_at": "2026-12-01T10:00:05+00:00", "host": "vm", "pid": 1, "concurrent_trials": 1,
            "env_id": env_id, "data_id": data_id}


def write(run: Path, records: list[dict[str, Any]], *, trial_ids: list[str] | None = None,
          objectives: list[str] | None = None, axes: list[str] | None = None, description: str = "what it answers",
          envs: dict[str, dict[str, Any]] | None = None, run_json: bool = True) -> Path:
    """A run directory: run.json (trial_ids default: every record's id), environments/, trials.jsonl."""
    run.mkdir(parents=True, exist_ok=True)
    if run_json:
        (run / "run.json").write_text(json.dumps({
            "schema": 1, "name": "decide", "description": description, "sweep_file": "sweep.yaml",
            "trial_ids": trial_ids if trial_ids is not None else list(dict.fromkeys(r["id"] for r in records)),
            "axes": axes if axes is not None else list(dict.fromkeys(k for r in records for k in r["axes"])),
            "objectives": objectives or ["auc:max", "train_cost_usd:min", "p99_ms:min", "model_train_mem_mb:min"],
            "repeats": 1, "written_at": "2026-12-01T10:00:00+00:00", "costbench": "0.2.0"}))
    (run / "environments").mkdir(exist_ok=True)
    for env_id, env in (envs or {"e0e0e0e0e0e0": ENV}).items():
        (run / "environments" / f"{env_id}.json").write_text(json.dumps(env))
    (run / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run
