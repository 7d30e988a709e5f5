"""A row's MLPerf LoadGen scenario (``details.scenario``) as the report reads it: the server scenario's figure
at its SLO for the planner, and why a scenario did not count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costbench.report.rows import Row


@dataclass
class ServerFigure:
    """The server scenario's highest QPS with a VALID LoadGen run and p99 <= ``slo_ms``."""

    qps: float
    p99_ms: float | None
    slo_ms: float
    max_batch: int | None


def server_figure(row: Row) -> ServerFigure | None:
    """The row's server-scenario figure, or None when it ran no server scenario or none met its SLO."""
    scenario = _scenario(row)
    qps = row.metrics.get("max_qps_at_slo")
    if scenario is None or scenario.get("scenario") != "server" or not qps or scenario.get("slo_ms") is None:
        return None
    return ServerFigure(qps=float(qps), p99_ms=row.metrics.get("p99_at_slo_ms"), slo_ms=float(scenario["slo_ms"]),
                        max_batch=scenario.get("max_batch"))


def not_valid_reason(row: Row) -> str | None:
    """Why the row's LoadGen scenario gave no figure (LoadGen's verdict and reasons), or None if it did or
    none ran."""
    scenario = _scenario(row)
    runs = [r for r in (scenario or {}).get("runs") or [] if isinstance(r, dict)]
    if scenario is None or not runs:
        return None
    if scenario.get("scenario") == "server":
        if server_figure(row) is not None:
            return None
        lowest = min(runs, key=lambda r: r.get("target_qps") or 0.0)
        p99 = lowest.get("p99_ms")
        return (f"server scenario: no run was VALID with p99 <= {scenario.get('slo_ms'):g} ms; the lowest try, "
                f"{lowest.get('target_qps') or 0:,.0f} QPS, was {lowest.get('verdict')} with p99 "
                f"{'n/a' if p99 is None else f'{p99:.3g} ms'}{_because(lowest)}")
    run = runs[-1]
    if run.get("valid"):
        return None
    return f"{scenario.get('scenario')} scenario: LoadGen's verdict {run.get('verdict')}{_because(run)}"


def _because(run: dict[str, Any]) -> str:
    reasons = run.get("invalid_because") or []
    return f" ({'; '.join(reasons)})" if reasons else ""


def _scenario(row: Row) -> dict[str, Any] | None:
    scenario = row.details.get("scenario")
    return scenario if isinstance(scenario, dict) else None


def invalid_notes(rows: list[Row]) -> list[str]:
    """One summary line per row whose LoadGen scenario gave no figure, with LoadGen's verdict and reasons."""
    return [f"trial {row.id}: LoadGen {reason}" for row in rows if (reason := not_valid_reason(row))]
