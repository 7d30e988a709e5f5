"""The machine and software a run's trials ran on, in lines a reader can check a result against."""

from __future__ import annotations

from typing import Any

from costbench.report.build import Report
from costbench.report.rundir import record_env_key

VERSIONS = ("python", "torch", "torchao", "numpy", "lightgbm", "xgboost", "catboost", "onnxruntime")


def _cpu(env: dict[str, Any]) -> str:
    cpu = env.get("cpu") if isinstance(env.get("cpu"), dict) else {}
    flags = cpu.get("flags") if isinstance(cpu.get("flags"), dict) else {}
    on = [name for name, value in flags.items() if value]
    cores = cpu.get("usable_cores") or cpu.get("logical_cores")
    text = f"{cpu.get('model') or 'CPU n/a'}" + (f", {cores} usable cores" if cores else "")
    return text + (f"; flags: {', '.join(on)}" if on else "; no AVX-512/AMX flags" if flags else "")


def _gpus(env: dict[str, Any]) -> str:
    gpus = [g for g in env.get("gpus") or [] if isinstance(g, dict)]
    if not gpus:
        return "no GPU"
    return "; ".join(f"{g.get('name', 'GPU')}" + (f" {g['memory_mb']:,} MB" if isinstance(g.get("memory_mb"), int)
                                                  else "") + (f", driver {g['driver']}" if g.get("driver") else "")
                     for g in gpus)


def _threads(env: dict[str, Any]) -> str:
    threads = env.get("threads") or env.get("effective_threads") or env.get("torch_threads")
    return f"{threads} torch thread(s) per trial" if threads else ""


def _gemm_peak(env: dict[str, Any]) -> str:
    peak = env.get("gemm_peak") if isinstance(env.get("gemm_peak"), dict) else {}
    shown = []
    for precision, unit in (("fp32", "GFLOP/s"), ("int8", "GOP/s")):
        found = peak.get(precision) if isinstance(peak.get(precision), dict) else {}
        if isinstance(found.get("gflops"), (int, float)):
            shown.append(f"{precision} {found['gflops']:,.0f} {unit} ({found.get('kernel')})")
    threads = f" on {peak['threads']} thread(s)" if peak.get("threads") else ""
    return f"GEMM peak {', '.join(shown)}{threads}" if shown else ""


def _versions(env: dict[str, Any]) -> str:
    versions = env.get("versions") if isinstance(env.get("versions"), dict) else {}
    shown = [f"{name} {versions[name]}" for name in VERSIONS if versions.get(name)]
    own = env.get("costbench")
    commit = env.get("costbench_commit")
    if own:
        shown.append(f"costbench {own}" + (f" ({str(commit)[:10]})" if commit else ""))
    return ", ".join(shown)


def machine_lines(report: Report) -> list[str]:
    """The process baseline apart, then one line per environment the shown trials ran in (with how many
    trials), or why it is unknown."""
    counts: dict[str, int] = {}
    by_id = {r["id"]: r for r in report.records}
    for row in report.rows:
        key = record_env_key(by_id.get(row.id, {}))
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    baselines = [v for r in report.rows if (v := r.metrics.get("process_baseline_mem_mb")) is not None]
    lines = [f"process baseline memory: {min(baselines):,.0f}-{max(baselines):,.0f} MB (interpreter, torch and "
             "libraries before the model; not the model's, so not what is ranked)"] if baselines else []
    if not report.environments:
        return [*lines, "machine: not recorded in this run directory"]
    for key, env in report.environments.items():
        parts = [p for p in (_cpu(env), _gpus(env), _threads(env), _gemm_peak(env), _versions(env)) if p]
        used = f" ({counts[key]} trial(s))" if key in counts and len(report.environments) > 1 else ""
        name = "environment.json" if key.endswith(".json") else f"environment {key}"
        host = f" on {env['host']}" if env.get("host") else ""
        lines.append(f"{name}{host}{used}: " + "; ".join(parts))
    return lines
