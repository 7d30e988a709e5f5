"""run_trial: one grid point, start to finish, as a pure function of its config.

data -> model -> train (under the precision's training policy) -> prepare for serving (cast, quantize,
compile) -> evaluate the served model -> measure serving latency -> one record. Exceptions are left to
the executor, which turns them into ``failed`` records; what cannot run honestly here is ``skipped``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch

from costbench.precision import Unsupported, get_policy, param_bytes, serialized_bytes
from costbench.record import make_record, utc_now
from costbench.spec import TrialConfig


class TrialSkipped(Exception):
    """This combination cannot run honestly on this machine; the message says why."""


def run_trial(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one trial (``Trial.to_json()``) and return its record."""
    started_at = utc_now()
    try:
        metrics, details = _measure(trial, on_phase or (lambda _phase: None))
    except (TrialSkipped, Unsupported) as exc:
        return make_record(trial, "skipped", reason=str(exc), started_at=started_at)
    return make_record(trial, "ok", metrics=metrics, details=details, started_at=started_at)


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when present; a CUDA trial on a machine without CUDA is skipped, never moved."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrialSkipped(f"device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrialSkipped(f"device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def _measure(trial: dict[str, Any], phase: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    from costbench.data.load import load_data
    from costbench.evaluate import evaluate
    from costbench.measure.cost import train_cost_usd
    from costbench.measure.energy import EnergyMeter
    from costbench.measure.latency import measure_latency
    from costbench.measure.memory import PeakMemory
    from costbench.model_presets import resolve_hparams
    from costbench.models import build_model, count_params
    from costbench.train import seed_everything, train_model

    cfg = TrialConfig.model_validate(trial["config"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    threads = torch.get_num_threads()
    device = resolve_device(cfg.device)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    policy = get_policy(cfg.precision)
    reason = policy.skip_reason(device, cfg.model.family, cfg.quantize)
    if reason:
        raise TrialSkipped(reason)

    seed_everything(cfg.seed)
    phase("data")
    data = load_data(cfg.data, trial.get("cache_dir"))
    hparams = resolve_hparams(cfg.model)
    model = build_model(hparams, data.schema).to(device)
    params = count_params(model)

    memory = PeakMemory(device)
    memory.reset()
    before_train_mb = memory.current_mb()
    with EnergyMeter(device) as train_energy:
        start = time.perf_counter()
        trained = train_model(
            model, data, cfg.train, device=device,
            autocast=lambda: policy.autocast(device), grad_scaler=policy.grad_scaler(device),
            on_epoch=lambda epoch, epochs: phase(f"train {epoch}/{epochs}"), val_batch_size=cfg.eval.batch_size,
        )
        # The training loop's own peak: quantizing and compiling (torchao, inductor) happen once after
        # it, possibly elsewhere, and their memory is recorded apart so precisions compare fairly.
        train_peak_mb, train_reserved_mb = memory.peak_mb(), memory.reserved_peak_mb()
        phase("quantize" if cfg.precision == "int8" else "prepare")
        memory.reset()
        example = tuple(t.to(device) for t in data.test.inputs(slice(0, cfg.serve.objective_batch_size)))
        served = policy.prepare_for_serving(model, example, device, cfg.quantize, cfg.serve.compile)
        train_seconds = time.perf_counter() - start - served.info.get("compile_seconds", 0.0)
    prepare_peak_mb = memory.peak_mb()

    phase("evaluate")
    quality = evaluate(served.fn, data, cfg.eval, device)

    phase("latency")
    memory.reset()
    latency = measure_latency(served.fn, data.test, cfg.serve, device)
    serve_peak_mb = memory.peak_mb()

    metrics: dict[str, Any] = dict(quality)
    if data.bayes_auc is not None:
        metrics["bayes_auc"] = data.bayes_auc
        metrics["auc_gap_to_bayes"] = data.bayes_auc - quality["auc"]
    metrics.update(
        val_auc=trained.best_val_auc,
        epochs_run=trained.epochs_run,
        params=params,
        param_bytes=param_bytes(served),
        model_bytes=serialized_bytes(served),
        train_seconds=train_seconds,
        quantize_seconds=served.info.get("quantize_seconds"),
        compile_seconds=served.info.get("compile_seconds"),
        train_samples_per_s=trained.samples_per_s,
        train_peak_mem_mb=train_peak_mb,
        train_mem_delta_mb=train_peak_mb - before_train_mb,
        train_peak_reserved_mb=train_reserved_mb,
        prepare_peak_mem_mb=prepare_peak_mb,
        serve_peak_mem_mb=serve_peak_mb,
        train_energy_j=train_energy.joules,
    )
    metrics.update(train_cost_usd(train_seconds, device, threads, gpu_name, cfg.prices))
    metrics.update(_latency_metrics(latency, cfg, device, threads, gpu_name))

    details = {
        "hparams": hparams,
        "device": str(device),
        "gpu": gpu_name,
        "threads": threads,
        "precision": served.info,
        "training": dataclasses.asdict(trained),
        "latency": latency,
        "memory_method": memory.method,
        "energy": {"train": train_energy.why_unavailable, "serve": latency["energy_why_unavailable"]},
        "data": data.summary,
    }
    return metrics, details


def _latency_metrics(latency: dict[str, Any], cfg: TrialConfig, device: torch.device, threads: int,
                     gpu_name: str | None) -> dict[str, Any]:
    """Headline serving metrics at the objective batch size, and every batch size as 'name@batch'."""
    from costbench.measure.cost import serve_cost_per_million_usd

    metrics: dict[str, Any] = {}
    headline = str(cfg.serve.objective_batch_size)
    for batch, stats in latency["batch_sizes"].items():
        values = {name: stats[name] for name in ("p50_ms", "p90_ms", "p99_ms", "p99_upper_ms", "mean_ms", "cold_ms",
                                                 "throughput")}
        values["serve_cost_per_million_usd"] = serve_cost_per_million_usd(
            stats["throughput"], device, threads, gpu_name, cfg.prices)
        values["serve_energy_per_1k_j"] = stats["energy_per_1k_j"]
        metrics.update({f"{name}@{batch}": value for name, value in values.items()})
        if batch == headline:
            metrics.update(values)
            rounds = stats["round_p50s_ms"]
            metrics["round_spread"] = max(rounds) / min(rounds) - 1 if min(rounds) > 0 else None
    metrics["probe_drift"] = latency["probe"]["drift"]
    return metrics
