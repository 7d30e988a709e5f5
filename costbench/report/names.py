"""Human names for metrics and axes: 'p99_ms' -> 'p99 (ms)', 'model_bytes' -> 'model size (KB)'.

Shared by tables, plots and the decision card, so a figure is called the same everywhere it appears.
"""

from __future__ import annotations

import json
from typing import Any

from costbench.record import metric_unit

# metric -> (header, short header for a terminal, shown unit, factor from the recorded unit)
DISPLAY: dict[str, tuple[str, str, str, float]] = {
    "auc": ("AUC", "AUC", "", 1.0),
    "auc_delta_vs_fp32": ("AUC vs fp32", "ΔAUC", "", 1.0),
    "pr_auc": ("PR AUC", "PR AUC", "", 1.0),
    "p50_ms": ("p50", "p50", "ms", 1.0),
    "p90_ms": ("p90", "p90", "ms", 1.0),
    "p99_ms": ("p99", "p99", "ms", 1.0),
    "p99_upper_ms": ("p99 upper", "p99 up", "ms", 1.0),
    "throughput": ("throughput", "rows/s", "rows/s", 1.0),
    "gflops": ("achieved", "GFLOP/s", "GFLOP/s", 1.0),
    "flops_efficiency": ("of GEMM peak", "% peak", "%", 100.0),
    "train_cost_usd": ("train cost", "train $", "$", 1.0),
    "serve_cost_per_million_usd": ("serving", "$/M", "$ per million", 1.0),
    "train_seconds": ("train time", "train s", "s", 1.0),
    "model_bytes": ("model size", "KB", "KB", 1e-3),
    "param_bytes": ("parameters", "param KB", "KB", 1e-3),
    "model_train_mem_mb": ("train memory (model)", "mem MB", "MB", 1.0),
    "model_serve_mem_mb": ("serve memory (model)", "srv MB", "MB", 1.0),
    "train_mem_delta_mb": ("train memory growth", "mem MB", "MB", 1.0),
    "train_peak_mem_mb": ("train peak (process)", "peak MB", "MB", 1.0),
    "serve_peak_mem_mb": ("serve peak (process)", "srv pk MB", "MB", 1.0),
    "process_baseline_mem_mb": ("process baseline", "base MB", "MB", 1.0),
}
AXIS_HEADERS = {"model.family": ("family", "family"), "model.size": ("size", "size"),
                "precision": ("precision", "prec"), "train.batch_size": ("train batch", "batch"),
                "device": ("device", "dev")}


def display(metric: str) -> tuple[str, str, str, float]:
    base, at, batch = metric.partition("@")
    name, short, unit, factor = DISPLAY.get(base, (base, base, metric_unit(base), 1.0))
    suffix = f" @{batch}" if at else ""
    return name + suffix, short + suffix, unit, factor


def header(metric: str) -> str:
    """'p99_ms' -> 'p99 (ms)': a human name and the unit shown."""
    name, _, unit, _ = display(metric)
    return f"{name} ({unit})" if unit else name


def short_header(metric: str) -> str:
    name, short, unit, _ = display(metric)
    return short if short != name or not unit or unit in short else f"{short} {unit}"


def axis_key(value: Any) -> Any:
    """An axis value as a group, colour or panel key: dicts and lists (a grid over ``model.params``) by their
    JSON text, since they cannot be hashed; everything else as it is."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def axis_text(value: Any) -> str:
    """An axis value as a cell shows it: a float a search sampled to 4 significant digits, the rest as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
