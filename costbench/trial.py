"""run_trial: one grid point, start to finish, as a pure function of its config.

It reads top to bottom: data -> fit -> prepare -> evaluate -> serve -> record. The model family is a
backend behind ``costbench.families``; each phase is measured by one instrument (``measure_phase``);
``record_metrics.trial_metrics`` alone turns the typed results into the record's metric names.
Exceptions are left to the executor, which turns them into ``failed`` records; what cannot run honestly
here raises ``TrialSkipped`` and becomes a ``skipped`` record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from costbench.errors import TrialSkipped
from costbench.executors.base import LOCK_WAIT_PHASE, TEACHER_WAIT_PHASE
from costbench.record import make_record, utc_now
from costbench.spec import TrialConfig

Partial = Callable[[dict[str, Any]], None]


def run_trial(trial: dict[str, Any], on_phase: Callable[[str], None] | None = None,
              on_partial: Partial | None = None) -> dict[str, Any]:
    """Run one trial (``Trial.to_json()``) and return its record; ``on_partial`` receives the metrics
    measured so far after each phase, so a trial ended by a timeout keeps them."""
    from costbench.measure.environment import trial_environment

    started_at = utc_now()
    cfg = TrialConfig.model_validate(trial["config"])
    resources = apply_resources(trial.get("resources"), cfg)
    phase = on_phase or (lambda _p: None)
    environment = trial_environment(on_wait=lambda: phase(LOCK_WAIT_PHASE), on_acquired=lambda: phase("environment"))
    try:
        metrics, details = _run(trial, cfg, phase, on_partial or (lambda _m: None))
    except TrialSkipped as exc:
        return make_record(trial, "skipped", reason=str(exc), started_at=started_at, resources=resources,
                           environment=environment)
    return make_record(trial, "ok", metrics=metrics, details=details, started_at=started_at, resources=resources,
                       environment=environment)


def apply_resources(planned: dict[str, Any] | None, cfg: TrialConfig) -> dict[str, Any]:
    """Set the threads the resource plan gave this trial (its own ``threads`` setting wins) and return
    what is in effect, for the record and for resume to compare."""
    planned = planned or {}
    threads = cfg.threads or planned.get("threads")
    if threads:
        torch.set_num_threads(threads)
    return {**planned, "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


def resolve_device(name: str) -> torch.device:
    """The one device gate: 'auto' is CUDA when present; a CUDA trial on a machine without CUDA (or
    without that GPU index) is skipped, never moved."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrialSkipped(f"device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrialSkipped(f"device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def _run(trial: dict[str, Any], cfg: TrialConfig, phase: Callable[[str], None],
         partial: Partial) -> tuple[dict[str, Any], dict[str, Any]]:
    from costbench.data.load import load_data
    from costbench.evaluate import evaluate
    from costbench.families import get_family
    from costbench.measure.latency import measure_latency
    from costbench.measure.memory import PeakMemory
    from costbench.measure.phase import measure_phase
    from costbench.measure.roofline import cached_gemm_peaks
    from costbench.record_metrics import TrialMeasurements, trial_metrics
    from costbench.train import seed_everything

    device = resolve_device(cfg.device)
    family = get_family(cfg.model.family)
    family.check(cfg, device)
    if cfg.serve.scenario != "none":
        from costbench.runtimes.loadgen import missing_loadgen

        if reason := missing_loadgen():
            raise TrialSkipped(reason)
    seed_everything(cfg.seed)

    phase("data")
    data = load_data(cfg.data, trial.get("cache_dir"))
    memory = PeakMemory(device)
    peak = cached_gemm_peaks() if device.type == "cpu" else None  # the environment's, cached in this process
    found = TrialMeasurements(cfg=cfg, device=device, threads=torch.get_num_threads(), data=data, gemm_peak=peak)
    soft_targets = None
    if cfg.compress.distill is not None:  # outside the fit phase: the teacher's cost is its own figure
        from costbench.compress.teacher import obtain_teacher

        phase("teacher")
        found.teacher = obtain_teacher(cfg, data, trial["data_id"], trial.get("cache_dir"), device, phase,
                                       on_wait=lambda: phase(TEACHER_WAIT_PHASE), on_acquired=lambda: phase("teacher"))
        soft_targets = found.teacher.soft_targets(cfg.compress.distill)
        seed_everything(cfg.seed)  # the student starts alike whether its teacher was trained here or read

    with measure_phase(memory, device) as fit_cost:
        fitted = family.fit(data, cfg, device, phase, soft_targets)
    found.fit, found.fit_cost = fitted, fit_cost.result
    partial(trial_metrics(found))

    phase("quantize" if cfg.precision == "int8" else "prepare")
    with measure_phase(memory, device) as prepare_cost:
        served = family.prepare(fitted, data, cfg, device)
    found.served, found.prepare_cost = served, prepare_cost.result

    phase("evaluate")
    found.quality = evaluate(served.predict, data, cfg.eval, device, stage=served.stage)
    partial(trial_metrics(found))

    phase("latency")
    with measure_phase(memory, device) as serve_cost:
        found.latency = measure_latency(served.predict, data.test, cfg.serve, device, stage=served.stage,
                                        on_wait=lambda: phase(LOCK_WAIT_PHASE), on_acquired=lambda: phase("latency"))
    found.serve_cost = serve_cost.result
    memory.close()
    if fitted.uncompressed is not None:  # compress.prune: the model before pruning, served and timed alike
        phase("latency before prune")
        before = family.prepare(fitted.uncompressed, data, cfg, device)
        found.latency_before_prune = measure_latency(
            before.predict, data.test, cfg.serve, device, stage=before.stage,
            on_wait=lambda: phase(LOCK_WAIT_PHASE), on_acquired=lambda: phase("latency before prune"))
    if cfg.serve.scenario != "none":
        from costbench.measure.latency import latency_lock
        from costbench.runtimes.loadgen import run_scenario

        step = f"scenario {cfg.serve.scenario}"
        phase(step)
        with latency_lock(on_wait=lambda: phase(LOCK_WAIT_PHASE), on_acquired=lambda: phase(step)):
            found.scenario = run_scenario(served.predict, served.stage, data.test, cfg.serve)

    details = {
        "family": family.name,
        "hparams": fitted.hparams,
        "device": str(device),
        "gpu": found.gpu_name,
        "threads": found.threads,
        "precision": served.info,
        "training": fitted.summary.details,
        "stopped_reason": fitted.summary.stopped_reason,
        "latency": found.latency,
        "memory_method": memory.method,
        "energy": {"train": found.fit_cost.energy_why_unavailable,
                   "serve": found.latency["energy_why_unavailable"]},
        "data": data.summary,
        "scenario": found.scenario,
        "prune_latency": None if found.latency_before_prune is None else {
            when: {b: {k: stats[k] for k in ("p50_ms", "p99_ms")} for b, stats in latency["batch_sizes"].items()}
            for when, latency in (("before", found.latency_before_prune), ("after", found.latency))},
        "teacher": None if found.teacher is None else {**found.teacher.info, "cache_hit": found.teacher.cache_hit},
    }
    return trial_metrics(found), details
