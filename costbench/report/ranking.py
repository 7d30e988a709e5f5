"""Ranking a report's rows: Pareto ranks, the pick by practical equivalence, and noisy front positions.

A noisy latency figure (a spike in the tail) can push a trial off the front. Such a row is marked
``noisy-position`` when, with its latency as a quiet machine would show it (its p99 interval's low end,
or its p50 times the tail ratio of the run's steady trials), it would be on the front: the table then
says that a noisy figure decided its position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from costbench.pareto import Objective, compute_fronts, nondominated_ranks
from costbench.report.rows import Row

LATENCY = ("p50_ms", "p90_ms", "p99_ms", "p99_upper_ms", "mean_ms")
NOT_PICKED = ("below-twin", "low-quality")


def number(value: Any) -> float:
    """A metric as a float, NaN for n/a (None, text, bool)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def interval_names(metric: str) -> tuple[str, str]:
    """The metrics holding a metric's 95% interval: auc -> auc_ci_low/high, p99_ms -> p99_ci_low/high_ms."""
    if metric.endswith("_ms"):
        return f"{metric[:-3]}_ci_low_ms", f"{metric[:-3]}_ci_high_ms"
    return f"{metric}_ci_low", f"{metric}_ci_high"


def rank_rows(rows: list[Row], goals: list[Objective], by: str | None, tolerance: float) -> dict[str, int]:
    """Set rank, tie and pick on every row (in place); returns {objective metric: rows with it n/a}."""
    values = objective_values(rows, goals)
    low_name, high_name = interval_names(goals[0].metric)
    fronts = compute_fronts(values, goals, groups=[r.by for r in rows] if by is not None else None,
                            pick_candidates=np.array([not set(NOT_PICKED) & set(r.flags) for r in rows], dtype=bool),
                            tolerance=tolerance,
                            low=np.array([number(r.metrics.get(low_name)) for r in rows], dtype=float),
                            high=np.array([number(r.metrics.get(high_name)) for r in rows], dtype=float))
    for i, row in enumerate(rows):
        row.rank, row.tie, row.pick = int(fronts.rank[i]), bool(fronts.tie[i]), bool(fronts.pick[i])
    mark_noisy_positions(rows, goals, values)
    return fronts.missing


def objective_values(rows: list[Row], goals: list[Objective]) -> np.ndarray:
    values = np.array([[number(r.metrics.get(o.metric)) for o in goals] for r in rows], dtype=float)
    return values.reshape(len(rows), len(goals))


def _p50_name(metric: str) -> str:
    _, at, batch = metric.partition("@")
    return f"p50_ms{at}{batch}"


def steady_ratio(rows: list[Row], metric: str) -> float:
    """The median ratio of a latency metric to its p50 over the rows not flagged noisy (1.0 without any)."""
    ratios = [m / p for r in rows if "noisy" not in r.flags
              and (m := number(r.metrics.get(metric))) > 0 and (p := number(r.metrics.get(_p50_name(metric)))) > 0]
    return float(np.median(ratios)) if ratios else 1.0


def optimistic(row: Row, metric: str, ratio: float) -> float:
    """A latency objective as a quiet machine would show it: its interval's low end, else its p50 times the
    tail ratio of the run's steady trials (``ratio``); the recorded value when neither is known."""
    base, at, batch = metric.partition("@")
    recorded = number(row.metrics.get(metric))
    if base not in LATENCY:
        return recorded
    low = number(row.metrics.get(interval_names(base)[0] + (f"@{batch}" if at else "")))
    if not np.isnan(low):
        return min(low, recorded)
    p50 = number(row.metrics.get(_p50_name(metric)))
    return recorded if np.isnan(p50) else min(p50 * ratio, recorded)


def mark_noisy_positions(rows: list[Row], goals: list[Objective], values: np.ndarray) -> None:
    """Flag ``noisy-position`` on noisy rows kept off the front by a latency figure (see the module doc)."""
    latency = [j for j, o in enumerate(goals) if o.metric.partition("@")[0] in LATENCY]
    if not latency:
        return
    directions = [o.direction for o in goals]
    ratios = {j: steady_ratio(rows, goals[j].metric) for j in latency}
    for i, row in enumerate(rows):
        if "noisy" not in row.flags or row.rank <= 1:
            continue
        members = [k for k, r in enumerate(rows) if r.by == row.by and r.rank > 0]
        trial = values[members].copy()
        mine = members.index(i)
        for j in latency:
            trial[mine, j] = optimistic(row, goals[j].metric, ratios[j])
        if np.isfinite(trial).all() and nondominated_ranks(trial, directions)[mine] == 1:
            row.flags.append("noisy-position")
