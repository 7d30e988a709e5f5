"""Everything a report shows, computed once from a run directory; the writers only format it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from costbench.errors import UserError
from costbench.pareto import PICK_RULE, Objective, compute_fronts
from costbench.report.filters import Condition, apply_where, check_name, group_value, parse_where
from costbench.report.planner import Plan, parse_slo, parse_traffic, plan_serving
from costbench.report.rows import FLAGS, Row, add_quality, aggregate, status_counts
from costbench.spec import DEFAULT_OBJECTIVES, load_sweep, parse_objective
from costbench.store import SWEEP_FILE, TRIALS_FILE, latest_records, read_records


@dataclass
class Report:
    """A run's trials ranked, flagged and (optionally) priced for serving."""

    run_dir: Path
    name: str
    objectives: list[Objective]
    by: str | None
    where: list[Condition]
    rows: list[Row]  # after --where, front members first
    records: list[dict[str, Any]]  # the latest record of every trial, any status
    axes: list[str]
    summary: list[str]  # what a reader must know: counts, what was left out, the rules used
    warnings: list[str]
    plans: list[Plan] | None = None
    plan_title: str = ""
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def front(self) -> list[Row]:
        return [r for r in self.rows if r.rank == 1]

    @property
    def repeats(self) -> bool:
        return any(r.n > 1 for r in self.rows)


def parse_objectives(text: str | None, default: Sequence[str]) -> list[Objective]:
    """'auc:max,p99_ms:min' (or the sweep's list) -> objectives; a bad one is a one-line UserError."""
    items = [t.strip() for t in text.split(",") if t.strip()] if text is not None else list(default)
    if not items:
        raise UserError("--objectives is empty; e.g. --objectives auc:max,train_cost_usd:min,p99_ms:min")
    objectives = []
    for item in items:
        try:
            objectives.append(Objective(*parse_objective(item)))
        except ValueError as exc:
            raise UserError(f"--objectives: {exc}") from None
    return objectives


def build_report(run_dir: str | Path, *, objectives: str | None = None, by: str | None = None,
                 where: Sequence[str] = (), min_quality: float = 0.99, traffic: str | None = None,
                 slo_p99: str | None = None, retrains_per_month: float = 0.0) -> Report:
    """Read a run (complete or interrupted) and rank its trials; see ReportOptions for the arguments."""
    run_dir = Path(run_dir)
    if not (run_dir / TRIALS_FILE).exists() and not (run_dir / SWEEP_FILE).exists():
        what = "no such directory" if not run_dir.is_dir() else f"no {TRIALS_FILE} or {SWEEP_FILE} here"
        raise UserError(f"{what}; give a run directory written by `costbench sweep` (e.g. results/quickstart)",
                        where=str(run_dir))
    if not 0 < min_quality <= 1:
        raise UserError(f"--min-quality {min_quality:g} must be a share in (0, 1], e.g. 0.99")
    if retrains_per_month < 0:
        raise UserError(f"--retrains-per-month {retrains_per_month:g} must be >= 0")
    if (traffic is None) != (slo_p99 is None):
        raise UserError("the serving planner needs both --traffic and --slo-p99, e.g. --traffic 50M/day "
                        "--slo-p99 20ms")
    rate = parse_traffic(traffic) if traffic is not None else None
    slo_ms = parse_slo(slo_p99) if slo_p99 is not None else None

    raw_records, warnings = read_records(run_dir)
    records = list(latest_records(raw_records).values())
    name, default_objectives, expected, sweep_axes, sweep_note = _read_sweep(run_dir)
    if sweep_note:
        warnings.append(sweep_note)
    goals = parse_objectives(objectives, default_objectives)

    rows = aggregate(records)
    add_quality(rows, min_quality)
    for goal in goals:
        check_name(goal.metric, rows, f"objective '{goal}'")
        if rows and all(r.metrics.get(goal.metric) is None for r in rows):
            warnings.append(f"objective {goal.metric} is n/a in every trial, so none can be ranked; "
                            "leave it out with --objectives")
    conditions = [parse_where(text, rows) for text in where]
    if by is not None:
        check_name(by, rows, f"--by '{by}'")
    shown, filtered = apply_where(rows, conditions)
    for row in shown:
        row.by = group_value(row, by) if by is not None else None
    values = np.array([[_number(r.metrics.get(o.metric)) for o in goals] for r in shown], dtype=float)
    fronts = compute_fronts(values.reshape(len(shown), len(goals)), goals,
                            groups=[r.by for r in shown] if by is not None else None,
                            pick_candidates=np.array([not {"below-twin", "low-quality"} & set(r.flags)
                                                      for r in shown], dtype=bool))
    for i, row in enumerate(shown):
        row.rank, row.tie, row.pick = int(fronts.rank[i]), bool(fronts.tie[i]), bool(fronts.pick[i])
    shown = _front_first(shown, goals)

    axes = sweep_axes or list(dict.fromkeys(k for r in records for k in r.get("axes") or {}))
    report = Report(run_dir=run_dir, name=name or run_dir.name, objectives=goals, by=by, where=conditions,
                    rows=shown, records=records, axes=axes, summary=[], warnings=warnings)
    report.summary = _summary(report, expected, filtered, fronts.missing, min_quality)
    if rate is not None and slo_ms is not None:
        report.plans = plan_serving(report.front, rate, slo_ms, retrains_per_month)
        report.plan_title = (f"Serving plan: {traffic} (average {rate:,.1f} rows/s), p99 <= {slo_ms:g} ms, "
                             f"{retrains_per_month:g} retrain(s)/month")
    return report


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def _read_sweep(run_dir: Path) -> tuple[str | None, list[str], set[str] | None, list[str], str | None]:
    """Name, objectives, expected trial ids and axes from the run's resolved sweep file, if it has one."""
    path = run_dir / SWEEP_FILE
    if not path.exists():
        return None, DEFAULT_OBJECTIVES, None, [], f"{path} not found: the number of missing trials is unknown"
    try:
        sweep = load_sweep(path)
    except UserError as exc:
        return None, DEFAULT_OBJECTIVES, None, [], f"cannot read the run's sweep file ({exc}); " \
            "missing trials are not counted"
    return sweep.spec.name, list(sweep.spec.objectives), {t.id for t in sweep.trials}, sweep.axes, None


def _front_first(rows: list[Row], goals: list[Objective]) -> list[Row]:
    groups = list(dict.fromkeys(r.by for r in rows))
    first = goals[0]

    def key(row: Row) -> tuple[Any, ...]:
        value = _number(row.metrics.get(first.metric))
        best = -value if first.direction == "max" else value
        return (groups.index(row.by), row.rank == 0, row.rank, not row.pick,
                np.inf if np.isnan(best) else best)

    return sorted(rows, key=key)


def _summary(report: Report, expected: set[str] | None, filtered: int, missing_objective: dict[str, int],
             min_quality: float) -> list[str]:
    counts = status_counts(report.records)
    recorded = {r["id"] for r in report.records}
    line = (f"{len(report.records)} trial(s) recorded: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} "
            f"failed, {counts.get('skipped', 0)} skipped")
    if expected is not None:
        if report.records and not recorded & expected:
            line += "; their ids do not match the run's sweep file (edited since?), so missing trials are unknown"
        else:
            missing = len(expected - recorded)
            line = f"{len(expected)} trial(s) in the sweep, " + line
            if missing:
                line += (f"; {missing} missing (the run was interrupted or is still going: "
                         "`costbench sweep` on the same file resumes it)")
    lines = [line]
    left = [f"{counts[s]} {s}" for s in ("failed", "skipped") if counts.get(s)]
    if filtered:
        left.append(f"{filtered} filtered out by --where {' and '.join(c.text for c in report.where)}")
    left += [f"{n} with {metric} n/a" for metric, n in missing_objective.items()]
    if left:
        lines.append("left out of the front: " + ", ".join(left))
    if report.repeats:
        lines.append("each row is the mean over its repeats (n); ± is the sample standard deviation")
    lines.append("objectives: " + ", ".join(str(o) for o in report.objectives)
                 + (f"; one front per {report.by}" if report.by else ""))
    lines.append(PICK_RULE + "; trials flagged below-twin or low-quality are not picked when another "
                 "front member passes")
    flags = dict(FLAGS)
    flags["low-quality"] = flags["low-quality"].replace("--min-quality", f"--min-quality {min_quality:g}")
    used = {f for r in report.rows for f in r.flags}
    lines += [f"flag {name}: {meaning}" for name, meaning in flags.items() if name in used]
    return lines
