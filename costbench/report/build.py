"""Everything a report shows, computed once from a run directory; the writers only format it.

The report reads only the run directory (run.json, trials.jsonl, environments/): it never imports torch
and never re-expands the sweep, so it is fast and shows what the run recorded, not what the code would
do today.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from costbench.errors import UserError
from costbench.pareto import DEFAULT_TIE_TOLERANCE, Objective, pick_rule
from costbench.record import metric_unit
from costbench.report.compression import cost_view_notes
from costbench.report.filters import Condition, apply_where, check_name, group_value, parse_where
from costbench.report.planner import Plan, parse_slo, parse_traffic, plan_serving
from costbench.report.plots import Plot, plan_plots
from costbench.report.ranking import number, rank_rows
from costbench.report.rows import FLAGS, Row, add_quality, aggregate, status_counts
from costbench.report.rundir import (
    RunInfo,
    newer_records,
    read_environments,
    read_run_info,
    record_env_key,
)
from costbench.report.scenario import invalid_notes
from costbench.report.search_view import SearchCurve, search_curve
from costbench.spec import canonical_json, parse_objective
from costbench.store import SWEEP_FILE, TRIALS_FILE, latest_records, read_records

# A model-only memory objective of a run made before costbench recorded it falls back to this.
MEMORY_FALLBACK = {"model_train_mem_mb": "train_mem_delta_mb", "model_serve_mem_mb": "serve_peak_mem_mb"}


@dataclass
class Report:
    """A run's trials ranked, flagged and (optionally) priced for serving."""

    run_dir: Path
    name: str
    objectives: list[Objective]
    by: str | None
    where: list[Condition]
    rows: list[Row]  # after --where, front members first
    records: list[dict[str, Any]]  # the latest record of every trial ranked, any status
    axes: list[str]
    summary: list[str]  # what a reader must know: counts, what was left out, the rules used
    warnings: list[str]
    description: str = ""
    earlier: list[dict[str, Any]] = field(default_factory=list)  # records of an earlier sweep version, not ranked
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)  # env key -> environment
    plans: list[Plan] | None = None
    plan_title: str = ""
    plots: list[Plot] = field(default_factory=list)
    suffix: str = ""  # "" for the main files, "-where-<slug>" for a filtered report
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE
    search: SearchCurve | None = None  # a search run: its hypervolume point after point

    @property
    def front(self) -> list[Row]:
        return [r for r in self.rows if r.rank == 1]

    @property
    def repeats(self) -> bool:
        return any(r.n > 1 for r in self.rows)

    @property
    def pick(self) -> Row | None:
        return next((r for r in self.rows if r.pick), None)

    @property
    def not_ok(self) -> list[dict[str, Any]]:
        """Failed and skipped records, with their reasons, in file order."""
        return [r for r in self.records if r.get("status") != "ok"]


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


def where_suffix(where: Sequence[str]) -> str:
    """'-where-p99_ms-le-20' for --where "p99_ms<=20": a filtered report never overwrites the main files."""
    if not where:
        return ""
    words = {"<=": "-le-", ">=": "-ge-", "==": "-eq-", "!=": "-ne-", "<": "-lt-", ">": "-gt-"}
    text = "-and-".join(re.sub(r"<=|>=|==|!=|<|>", lambda m: words[m.group(0)], w.replace(" ", "")) for w in where)
    slug = re.sub(r"[^A-Za-z0-9_.@-]+", "_", text).replace("@", "_at_").strip("-_")
    return f"-where-{slug[:80]}"


def build_report(run_dir: str | Path, *, objectives: str | None = None, by: str | None = None,
                 where: Sequence[str] = (), min_quality: float = 0.99, traffic: str | None = None,
                 slo_p99: str | None = None, retrains_per_month: float = 0.0, all_records: bool = False,
                 tie_tolerance: float = DEFAULT_TIE_TOLERANCE) -> Report:
    """Read a run (complete or interrupted) and rank its trials; see ReportOptions for the arguments."""
    run_dir = Path(run_dir)
    if not (run_dir / TRIALS_FILE).exists() and not (run_dir / SWEEP_FILE).exists() \
            and not (run_dir / "run.json").exists():
        what = "no such directory" if not run_dir.is_dir() else f"no run.json, {TRIALS_FILE} or {SWEEP_FILE} here"
        raise UserError(f"{what}; give a run directory written by `costbench sweep` (e.g. results/quickstart)",
                        where=str(run_dir))
    if not 0 < min_quality <= 1:
        raise UserError(f"--min-quality {min_quality:g} must be a share in (0, 1], e.g. 0.99")
    if retrains_per_month < 0:
        raise UserError(f"--retrains-per-month {retrains_per_month:g} must be >= 0")
    if not 0 <= tie_tolerance < 1:
        raise UserError(f"--tie-tolerance {tie_tolerance:g} must be in [0, 1), e.g. 0.001 (AUC)")
    if (traffic is None) != (slo_p99 is None):
        raise UserError("the serving planner needs both --traffic and --slo-p99, e.g. --traffic 50M/day "
                        "--slo-p99 20ms")
    rate = parse_traffic(traffic) if traffic is not None else None
    slo_ms = parse_slo(slo_p99) if slo_p99 is not None else None

    raw_records, warnings = read_records(run_dir)
    info = read_run_info(run_dir)
    warnings += info.notes
    if note := newer_records(raw_records):
        warnings.append(note)
    latest = list(latest_records(raw_records).values())
    current, earlier = _split_versions(latest, info)
    records = latest if all_records else current

    rows = aggregate(records)
    add_quality(rows, min_quality)
    goals = parse_objectives(objectives, info.objectives)
    goals, memory_notes = _memory_fallback(goals, rows)
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
    missing_objective = rank_rows(shown, goals, by, tie_tolerance)
    shown = _front_first(shown, goals)

    environments, env_notes = read_environments(run_dir, [k for r in records if (k := record_env_key(r))])
    warnings += env_notes + _mixed(shown, by)
    axes = info.axes or list(dict.fromkeys(k for r in records for k in r.get("axes") or {}))
    report = Report(run_dir=run_dir, name=info.name or run_dir.name, objectives=goals, by=by, where=conditions,
                    rows=shown, records=records, axes=axes, summary=[], warnings=warnings,
                    description=info.description, earlier=[] if all_records else earlier,
                    environments=environments, suffix=where_suffix(where), tie_tolerance=tie_tolerance)
    report.plots, plot_notes = plan_plots(shown, goals, report.suffix)
    if info.search is not None and not conditions:  # --where leaves out points the search ran
        report.search = search_curve(records, [r for r in shown if r.rank > 0], goals, info.search)
    notes = memory_notes + plot_notes + invalid_notes(shown) + cost_view_notes(shown)
    report.summary = _summary(report, info, len(earlier) if all_records else 0, filtered, missing_objective,
                              min_quality) + notes
    if rate is not None and slo_ms is not None:
        report.plans = plan_serving(report.front, rate, slo_ms, retrains_per_month)
        report.plan_title = (f"Serving plan: {traffic} (average {rate:,.1f} rows/s), p99 <= {slo_ms:g} ms, "
                             f"{retrains_per_month:g} retrain(s)/month")
    return report


def _split_versions(records: list[dict[str, Any]], info: RunInfo) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records of the sweep as it now stands, and those of an earlier version (each with why it is not current)."""
    if info.trial_ids is None:
        return records, []
    wanted = set(info.trial_ids)
    current = [r for r in records if r["id"] in wanted]
    by_config = {canonical_json(r.get("config")): r for r in current}
    earlier = []
    for record in records:
        if record["id"] in wanted:
            continue
        twin = by_config.get(canonical_json(record.get("config")))
        if twin is not None and twin.get("data_id") != record.get("data_id"):
            why = f"data changed (fingerprint {record.get('data_id') or 'n/a'}, now {twin.get('data_id') or 'n/a'})"
        else:
            why = "configuration no longer in the sweep"
        earlier.append({**record, "why_not_ranked": why})
    return current, earlier


def _memory_fallback(goals: list[Objective], rows: list[Row]) -> tuple[list[Objective], list[str]]:
    """A model-only memory objective that no record has (an older run) falls back to its nearest figure."""
    notes = []
    resolved = []
    for goal in goals:
        fallback = MEMORY_FALLBACK.get(goal.metric)
        if fallback and rows and all(r.metrics.get(goal.metric) is None for r in rows) \
                and any(r.metrics.get(fallback) is not None for r in rows):
            notes.append(f"{goal.metric} not recorded (run made by costbench < 0.2): ranking on {fallback} "
                         "instead, the closest figure of the model's own memory it has")
            goal = Objective(fallback, goal.direction)
        resolved.append(goal)
    if any(g.metric in ("train_peak_mem_mb", "serve_peak_mem_mb") for g in resolved):
        baselines = [v for r in rows if (v := r.metrics.get("process_baseline_mem_mb")) is not None]
        what = f" ({min(baselines):,.0f}-{max(baselines):,.0f} MB here)" if baselines else ""
        notes.append(f"a *_peak_mem_mb objective includes the process baseline{what}: interpreter, torch and "
                     "libraries, not the model; model_train_mem_mb is the model's own")
    return resolved, notes


def _mixed(rows: list[Row], by: str | None) -> list[str]:
    """Warnings when the rows compared ran on different machines or software."""
    envs = sorted({r.env_id for r in rows if r.env_id})
    if len(envs) > 1 and by != "env_id":
        return [f"the trials compared ran in {len(envs)} different environments ({', '.join(envs)}); "
                "compare within each with --by env_id"]
    return []


def _front_first(rows: list[Row], goals: list[Objective]) -> list[Row]:
    groups = list(dict.fromkeys(r.by for r in rows))
    first = goals[0]

    def key(row: Row) -> tuple[Any, ...]:
        value = number(row.metrics.get(first.metric))
        best = -value if first.direction == "max" else value
        return (groups.index(row.by), row.rank == 0, row.rank, not row.pick,
                np.inf if np.isnan(best) else best)

    return sorted(rows, key=key)


def _summary(report: Report, info: RunInfo, included_earlier: int, filtered: int,
             missing_objective: dict[str, int], min_quality: float) -> list[str]:
    counts = status_counts(report.records)
    recorded = {r["id"] for r in report.records}
    line = (f"{len(report.records)} trial(s) recorded: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} "
            f"failed, {counts.get('skipped', 0)} skipped")
    if info.trial_ids is not None:
        missing = len(set(info.trial_ids) - recorded)
        line = f"{len(info.trial_ids)} trial(s) in the sweep, " + line
        if missing:
            line += (f"; {missing} missing (the run was interrupted or is still going: "
                     "`costbench sweep` on the same file resumes it)")
    lines = [line]
    if report.earlier:
        lines.append(f"{len(report.earlier)} record(s) from an earlier version of this sweep are not ranked; "
                     "--all-records includes them")
    if included_earlier:
        lines.append(f"--all-records: {included_earlier} record(s) from an earlier version of this sweep are "
                     "ranked with the current ones")
    left = [f"{counts[s]} {s}" for s in ("failed", "skipped") if counts.get(s)]
    if filtered:
        left.append(f"{filtered} filtered out by --where {' and '.join(c.text for c in report.where)}")
    left += [f"{n} with {metric} n/a" for metric, n in missing_objective.items()]
    if left:
        lines.append("left out of the front: " + ", ".join(left))
    if report.repeats:
        lines.append("each row is the mean over its repeats (n); ± is the sample standard deviation over them, "
                     "except beside AUC in the trials table, where it is half the 95% interval on the test rows "
                     "(the repeats' mean interval)")
    lines.append("objectives: " + ", ".join(str(o) for o in report.objectives)
                 + (f"; one front per {report.by}" if report.by else ""))
    first = report.objectives[0].metric
    unit = metric_unit(first)
    lines.append(pick_rule(first + (f" ({unit})" if unit else ""), report.tie_tolerance)
                 + "; trials flagged below-twin or low-quality are never picked")
    if report.rows and report.pick is None:
        lines.append("no recommended pick: no front member passes the quality gates (below-twin, low-quality)")
    flags = dict(FLAGS)
    flags["low-quality"] = flags["low-quality"].replace("--min-quality", f"--min-quality {min_quality:g}")
    used = {f for r in report.rows for f in r.flags}
    lines += [f"flag {name}: {meaning}" for name, meaning in flags.items() if name in used]
    return lines
