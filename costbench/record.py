"""The shape of one line of ``trials.jsonl``: the contract every reader of a run relies on.

A record is a JSON object::

    {
      "schema": 1,
      "id": "3f2a9c01b7de",          # hash of the resolved trial config and its data (see spec.trial_id)
      "group": "a81c4e0f9b22",       # the same without the seed: repeats share it
      "data_id": "9b1e0c2d44f7a310", # the data's content fingerprint (costbench.data.fingerprint)
      "repeat": 0,                   # 0 .. repeats-1
      "status": "ok" | "failed" | "skipped",
      "reason": null | "why it failed or was skipped",
      "axes": {"model.size": "s", "precision": "bf16", ...},   # this trial's grid values
      "config": {...},               # the resolved trial config: everything that defines the trial
      "metrics": {"auc": 0.87, "p99_ms": 0.41, ...},           # flat name -> number (or null = n/a)
      "details": {...},              # structured extras: latency per batch size, precision info, ...
      "started_at": "2026-11-29T21:40:00+00:00",
      "finished_at": "2026-11-29T21:40:12+00:00",
      "host": "hostname", "pid": 1234, "concurrent_trials": 1,
      "resources": {"threads": 1, "interop_threads": 2, "workers": 2, ...},  # as planned and in effect
      "env_id": "5c0e91a3d2b4"       # environments/<env_id>.json: the machine the trial ran on
    }

``metrics`` holds only numbers or null, so objectives and ``--where`` filters can name any of them.
The names below are the ones costbench writes; each comes with its unit and its better direction.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from datetime import datetime, timezone
from typing import Any, Literal

SCHEMA_VERSION = 2  # 2: env_id (environments/<env_id>.json), resources, data_id

Status = Literal["ok", "failed", "skipped"]
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped")

# name -> (unit, better direction, one-line meaning). Units are shown in every table header.
METRICS: dict[str, tuple[str, str, str]] = {
    # quality, on the test split, of the model as served
    "auc": ("", "max", "ROC AUC of the served model on the test split"),
    "pr_auc": ("", "max", "average precision (area under the precision-recall curve)"),
    "logloss": ("", "min", "binary cross-entropy of the predicted probabilities"),
    "brier": ("", "min", "mean squared error of the predicted probabilities"),
    "accuracy": ("", "max", "accuracy at the F1-optimal validation threshold"),
    "precision": ("", "max", "precision at the F1-optimal validation threshold"),
    "recall": ("", "max", "recall at the F1-optimal validation threshold"),
    "f1": ("", "max", "F1 at the F1-optimal validation threshold"),
    "threshold": ("", "max", "the F1-optimal threshold chosen on the validation split"),
    "capture_at_top": ("", "max", "share of all buyers among the top-scored eval.top_fraction rows"),
    "lift_at_top": ("x", "max", "capture_at_top / top_fraction"),
    "auc_ci_low": ("", "max", "lower end of the test AUC's 95% bootstrap interval (200 replicates)"),
    "auc_ci_high": ("", "max", "upper end of the test AUC's 95% bootstrap interval"),
    "capture_at_top_ci_low": ("", "max", "lower end of capture_at_top's 95% bootstrap interval"),
    "capture_at_top_ci_high": ("", "max", "upper end of capture_at_top's 95% bootstrap interval"),
    "bayes_auc": ("", "max", "best AUC any model could reach on this test split (synthetic data)"),
    "auc_gap_to_bayes": ("", "min", "bayes_auc - auc"),
    "val_auc": ("", "max", "best validation AUC during training"),
    "auc_delta_vs_fp32": ("", "max", "auc minus the auc of this trial's fp32 twin"),
    # size
    "params": ("", "min", "trainable parameters"),
    "params_before_prune": ("", "min", "compress.prune: trainable parameters of the model before pruning"),
    "param_bytes": ("B", "min", "bytes of the served model's parameters and buffers"),
    "model_bytes": ("B", "min", "bytes of the serialised served model, as shipped"),
    # training cost
    "epochs_run": ("", "min", "epochs trained before stopping (networks)"),
    "iterations_run": ("", "min", "boosting rounds or trees kept after early stopping (tree families)"),
    "train_seconds": ("s", "min", "wall-clock training time, quantization included"),
    "quantize_seconds": ("s", "min", "time spent quantizing the trained model"),
    "compile_seconds": ("s", "min", "time spent compiling the served model (not in latency)"),
    "train_device_hours": ("h", "min", "device-hours held while training (cores or GPUs x hours), a distilled "
                           "trial's teacher included"),
    "train_cost_usd": ("$", "min", "train_device_hours x the sweep's price table; a distilled trial's includes "
                       "all of its teacher's (teacher_cost_usd)"),
    "own_train_cost_usd": ("$", "min", "a distilled trial's training cost without its teacher's"),
    "teacher_cost_usd": ("$", "min", "compress.distill: training the teacher and labelling the rows it distils"),
    "teacher_seconds": ("s", "min", "compress.distill: the teacher's training and labelling time"),
    "teacher_auc": ("", "max", "compress.distill: the teacher's test AUC (fp32, eager)"),
    "train_samples_per_s": ("rows/s", "max", "training throughput"),
    "train_energy_j": ("J", "min", "energy used while training, where a hardware counter exists"),
    # memory
    "train_peak_mem_mb": ("MB", "min", "peak memory while training (device on CUDA, process RSS on CPU)"),
    "train_mem_delta_mb": ("MB", "min", "training peak minus the memory in use before training"),
    "train_peak_reserved_mb": ("MB", "min", "CUDA: peak memory reserved by the caching allocator"),
    "prepare_peak_mem_mb": ("MB", "min", "peak memory while casting, quantizing and compiling for serving"),
    "serve_peak_mem_mb": ("MB", "min", "peak memory while serving"),
    "model_train_mem_mb": ("MB", "min", "the model's own training memory: training-loop growth over the process "
                           "baseline"),
    "model_serve_mem_mb": ("MB", "min", "the model's own serving memory: serving working set over the process "
                           "baseline"),
    "process_baseline_mem_mb": ("MB", "min", "memory of the trial process before the model (interpreter, torch, "
                                "libraries): not the model's"),
    # serving, at serve.batch_size_for_objective
    "p50_ms": ("ms", "min", "median latency of one serving call"),
    "p90_ms": ("ms", "min", "90th percentile latency of one serving call"),
    "p99_ms": ("ms", "min", "99th percentile latency of one serving call"),
    "p99_upper_ms": ("ms", "min", "conservative p99 by MLPerf's early-stopping rule"),
    "p99_ci_low_ms": ("ms", "min", "low end of the 95% interval of p99"),
    "p99_ci_high_ms": ("ms", "min", "high end of the 95% interval of p99"),
    "p50_ms_before_prune": ("ms", "min", "compress.prune: p50_ms of the model before pruning, served and timed "
                            "alike"),
    "p99_ms_before_prune": ("ms", "min", "compress.prune: p99_ms of the model before pruning"),
    "mean_ms": ("ms", "min", "mean latency of one serving call"),
    "cold_ms": ("ms", "min", "the first (cold) serving call"),
    "throughput": ("rows/s", "max", "rows scored per second"),
    "serve_cost_per_million_usd": ("$", "min", "cost of one million predictions at measured throughput"),
    "serve_energy_per_1k_j": ("J", "min", "energy per 1,000 predictions, where a hardware counter exists"),
    "gflops": ("GFLOP/s", "max", "achieved GFLOP/s (int8: GOP/s) at batch >= 64: the forward's matrix-product "
               "FLOPs per row (costbench.flops) x batch / p50"),
    "flops_efficiency": ("", "max", "gflops / the CPU's measured GEMM peak for the precision served (the "
                         "environment's gemm_peak); n/a on GPU and for bf16/fp16"),
    # MLPerf LoadGen scenarios (serve.scenario)
    "max_qps_at_slo": ("rows/s", "max", "server scenario: highest Poisson QPS LoadGen calls VALID with p99 <= "
                       "serve.slo_ms"),
    "p99_at_slo_ms": ("ms", "min", "server scenario: LoadGen's p99 at max_qps_at_slo"),
    "serve_cost_per_million_at_slo_usd": ("$", "min", "cost of one million predictions served at max_qps_at_slo"),
    "offline_qps": ("rows/s", "max", "offline scenario: LoadGen's samples per second"),
    "single_stream_p90_ms": ("ms", "min", "single-stream scenario: LoadGen's 90th percentile latency"),
    "probe_drift": ("", "min", "relative change of the GEMM probe across the latency phase (noise)"),
    "round_spread": ("", "min", "max / min - 1 of the per-round p50s at the headline batch size (noise)"),
}


# A latency measurement is noisy when the GEMM probe drifted, or the rounds' p50s spread, by more than this.
NOISY_DRIFT = 0.20


def metric_unit(name: str) -> str:
    """The unit of a metric, also for per-batch-size names such as ``p99_ms@256``."""
    base = name.split("@", 1)[0]
    return METRICS.get(base, ("", "", ""))[0]


def is_known_metric(name: str) -> bool:
    """True for the names above and their per-batch-size forms (``p99_ms@256``)."""
    base, _, batch = name.partition("@")
    return base in METRICS and (not batch or batch.isdigit())


def make_record(
    trial: dict[str, Any],
    status: Status,
    *,
    reason: str | None = None,
    metrics: dict[str, float | None] | None = None,
    details: dict[str, Any] | None = None,
    started_at: str | None = None,
    finished_at: str | None = None,
    concurrent_trials: int = 1,
    resources: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One record in the documented shape; executors use it for trials that never returned one.

    ``environment`` (collected where the trial ran) travels with the record to the driver, which stores
    it once as ``environments/<env_id>.json`` and keeps only ``env_id`` in the line it writes.
    """
    now = utc_now()
    return {
        "schema": SCHEMA_VERSION,
        "id": trial["id"],
        "group": trial["group"],
        "data_id": trial.get("data_id"),
        "repeat": trial["repeat"],
        "status": status,
        "reason": reason,
        "axes": trial["axes"],
        "config": trial["config"],
        "metrics": metrics or {},
        "details": details or {},
        "started_at": started_at or now,
        "finished_at": finished_at or now,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "concurrent_trials": concurrent_trials,
        "resources": resources if resources is not None else trial.get("resources"),
        "env_id": environment_id(environment) if environment is not None else None,
        ENVIRONMENT_IN_TRANSIT: environment,
    }


ENVIRONMENT_IN_TRANSIT = "environment"  # the key the driver replaces by environments/<env_id>.json


def environment_id(environment: dict[str, Any]) -> str:
    """A short hash of an environment's canonical JSON: the same machine and software give the same id."""
    text = json.dumps(environment, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
