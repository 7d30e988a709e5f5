"""The one place that turns what a trial measured (typed, with units) into the record's metric names.

Every name written here is documented in ``record.METRICS``; a test checks that. Anything not yet
measured (a trial ended early) is simply absent, so ``trial_metrics`` also gives the partial metrics a
timed-out trial keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costbench.families import Fitted, Served
from costbench.measure.cost import serve_cost_per_million_usd, train_cost_usd
from costbench.measure.phase import PhaseCost
from costbench.measure.roofline import achieved_gflops, flops_efficiency
from costbench.spec import TrialConfig

MB = 2**20
ROOFLINE_MIN_BATCH = 64  # below this a call is overhead, not arithmetic: no GFLOP/s is given


@dataclass
class TrialMeasurements:
    """What a trial has measured so far; phases fill it in order."""

    cfg: TrialConfig
    device: Any
    threads: int
    data: Any
    fit: Fitted | None = None
    fit_cost: PhaseCost | None = None
    served: Served | None = None
    prepare_cost: PhaseCost | None = None
    quality: dict[str, float] | None = None
    latency: dict[str, Any] | None = None
    serve_cost: PhaseCost | None = None
    scenario: dict[str, Any] | None = None  # runtimes.loadgen.run_scenario's result
    gemm_peak: dict[str, Any] | None = None  # measure.roofline's peaks of the CPU the trial ran on
    teacher: Any = None  # compress.teacher.Teacher of a distilled trial
    latency_before_prune: dict[str, Any] | None = None  # compress.prune: measure_latency of the unpruned model

    @property
    def gpu_name(self) -> str | None:
        if getattr(self.device, "type", None) != "cuda":
            return None
        import torch

        return torch.cuda.get_device_name(self.device)


def trial_metrics(m: TrialMeasurements) -> dict[str, Any]:
    """Flat metric name -> number (or None = n/a) for everything measured so far."""
    metrics: dict[str, Any] = {}
    if m.data.bayes_auc is not None:
        metrics["bayes_auc"] = m.data.bayes_auc
    if m.fit is not None and m.fit_cost is not None:
        metrics.update(_fit_metrics(m))
    if m.served is not None and m.prepare_cost is not None:
        metrics.update(_served_metrics(m))
    if m.quality is not None:
        metrics.update(m.quality)
        if m.data.bayes_auc is not None:
            metrics["auc_gap_to_bayes"] = m.data.bayes_auc - m.quality["auc"]
    if m.latency is not None:
        metrics.update(_latency_metrics(m))
    if m.scenario is not None:
        metrics.update(_scenario_metrics(m))
    if m.fit is not None and m.fit.uncompressed is not None:
        metrics["params_before_prune"] = m.fit.uncompressed.params
    if m.latency_before_prune is not None:
        stats = m.latency_before_prune["batch_sizes"][str(m.cfg.serve.objective_batch_size)]
        metrics.update({f"{name}_before_prune": stats[name] for name in ("p50_ms", "p99_ms")})
    return metrics


def _fit_metrics(m: TrialMeasurements) -> dict[str, Any]:
    assert m.fit is not None and m.fit_cost is not None
    summary, cost = m.fit.summary, m.fit_cost
    seconds = cost.seconds + (m.served.prepare_seconds if m.served is not None else 0.0)
    return {
        "val_auc": summary.best_val_auc,
        "epochs_run": summary.epochs_run,
        "iterations_run": summary.iterations_run,
        "params": m.fit.params,
        "train_seconds": seconds,
        "train_samples_per_s": summary.samples_per_s,
        "train_peak_mem_mb": cost.peak_mem_mb,
        "train_mem_delta_mb": cost.mem_growth_mb,
        "model_train_mem_mb": cost.mem_growth_mb,
        "process_baseline_mem_mb": cost.start_mem_mb,
        "train_peak_reserved_mb": cost.peak_reserved_mb,
        "train_energy_j": cost.energy_j,
        **train_cost_usd(seconds, m.device, m.threads, m.gpu_name, m.cfg.prices),
        **_teacher_metrics(m),
    }


def _teacher_metrics(m: TrialMeasurements) -> dict[str, Any]:
    """A distilled trial's training cost holds all of its teacher's: the student cannot be had without it,
    however many students of the sweep read the same cached teacher. ``own_train_cost_usd`` is without."""
    if m.teacher is None:
        return {}
    info = m.teacher.info
    own = train_cost_usd(m.fit_cost.seconds + (m.served.prepare_seconds if m.served is not None else 0.0),
                         m.device, m.threads, m.gpu_name, m.cfg.prices)
    teacher = train_cost_usd(info["seconds"], info["device"], info["threads"], info["gpu"], m.cfg.prices)
    return {
        "teacher_auc": info.get("auc"),
        "teacher_seconds": info["seconds"],
        "teacher_cost_usd": teacher["train_cost_usd"],
        "own_train_cost_usd": own["train_cost_usd"],
        "train_device_hours": own["train_device_hours"] + teacher["train_device_hours"],
        "train_cost_usd": own["train_cost_usd"] + teacher["train_cost_usd"],
    }


def _served_metrics(m: TrialMeasurements) -> dict[str, Any]:
    assert m.served is not None and m.prepare_cost is not None
    size = m.served.size
    return {
        "param_bytes": size.param_bytes,
        "model_bytes": size.model_bytes,
        "quantize_seconds": m.served.prepare_seconds if m.cfg.precision == "int8" else None,
        "compile_seconds": m.served.compile_seconds,
        "prepare_peak_mem_mb": m.prepare_cost.peak_mem_mb,
    }


def _latency_metrics(m: TrialMeasurements) -> dict[str, Any]:
    """Headline serving metrics at the objective batch size, and every batch size as 'name@batch'."""
    assert m.latency is not None
    metrics: dict[str, Any] = {}
    headline = str(m.cfg.serve.objective_batch_size)
    for batch, stats in m.latency["batch_sizes"].items():
        values = {name: stats[name] for name in ("p50_ms", "p90_ms", "p99_ms", "p99_upper_ms", "mean_ms", "cold_ms",
                                                 "throughput")}
        values["serve_cost_per_million_usd"] = serve_cost_per_million_usd(
            stats["throughput"], m.device, m.threads, m.gpu_name, m.cfg.prices)
        values["serve_energy_per_1k_j"] = stats["energy_per_1k_j"]
        if int(batch) >= ROOFLINE_MIN_BATCH:
            values["gflops"] = achieved_gflops(m.served.flops_per_row if m.served else None, int(batch),
                                               stats["p50_ms"])
            values["flops_efficiency"] = flops_efficiency(values["gflops"], _peak_gflops(m))
        metrics.update({f"{name}@{batch}": value for name, value in values.items()})
        if batch == headline:
            metrics.update(values)
            rounds = stats["round_p50s_ms"]
            metrics["round_spread"] = max(rounds) / min(rounds) - 1 if min(rounds) > 0 else None
    metrics["probe_drift"] = m.latency["probe"]["drift"]
    if m.serve_cost is not None:
        metrics["serve_peak_mem_mb"] = m.serve_cost.peak_mem_mb
        growth = m.serve_cost.mem_growth_mb
        weights = m.served.size.param_bytes if m.served is not None else None
        metrics["model_serve_mem_mb"] = None if growth is None or weights is None else weights / MB + growth
    return metrics


def _peak_gflops(m: TrialMeasurements) -> float | None:
    """The measured GEMM peak for the precision served; n/a off the CPU or for a precision not measured."""
    if m.gemm_peak is None or getattr(m.device, "type", None) != "cpu":
        return None
    return (m.gemm_peak.get(m.cfg.precision) or {}).get("gflops")


def _scenario_metrics(m: TrialMeasurements) -> dict[str, Any]:
    """The LoadGen scenario's figure; a run LoadGen did not call VALID gives n/a, never its raw number."""
    assert m.scenario is not None
    found = m.scenario
    if found["scenario"] == "server":
        qps = found["max_qps_at_slo"]
        return {"max_qps_at_slo": qps, "p99_at_slo_ms": found["p99_at_slo_ms"],
                "serve_cost_per_million_at_slo_usd": serve_cost_per_million_usd(qps, m.device, m.threads,
                                                                                m.gpu_name, m.cfg.prices)}
    run = found["runs"][-1]  # offline / single stream: the last run is the one that counts
    if found["scenario"] == "offline":
        return {"offline_qps": run["samples_per_s"] if run["valid"] else None}
    return {"single_stream_p90_ms": run["p90_ms"] if run["valid"] else None}
