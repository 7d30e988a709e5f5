"""`costbench report`: rank a run's trials, write its files, print what was asked for.

build.py computes (rows, fronts, flags, plan), table.py/files.py/plots.py only format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from costbench.errors import UserError, warn
from costbench.pareto import DEFAULT_TIE_TOLERANCE
from costbench.report.build import Report, build_report
from costbench.report.decision import decision
from costbench.report.files import markdown, report_json, rows_frame, write_files
from costbench.report.table import plan_table, to_rich, trials_table

WIDE = 140  # below this many columns the terminal table leaves out the 95% intervals

FORMATS = ("table", "csv", "markdown", "json", "none")


@dataclass
class ReportOptions:
    """What `costbench report` was asked for (see cli.py for each option's help)."""

    objectives: str | None = None
    by: str | None = None
    where: list[str] = field(default_factory=list)
    min_quality: float = 0.99
    traffic: str | None = None
    slo_p99: str | None = None
    retrains_per_month: float = 0.0
    format: str = "table"
    all_records: bool = False
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE


def render_report(run_dir: str | Path, options: ReportOptions, console: Console, stderr: Console) -> Report:
    """Build the report, write every file into the run directory, print it in ``options.format``."""
    if options.format not in FORMATS:
        raise UserError(f"--format '{options.format}' is not one of {', '.join(FORMATS)}")
    report = build_report(run_dir, objectives=options.objectives, by=options.by, where=options.where,
                          min_quality=options.min_quality, traffic=options.traffic, slo_p99=options.slo_p99,
                          retrains_per_month=options.retrains_per_month, all_records=options.all_records,
                          tie_tolerance=options.tie_tolerance)
    for warning in report.warnings:
        warn(stderr, warning)
    paths = write_files(report)
    if options.format == "table":
        console.print(to_rich(trials_table(report, intervals=console.width >= WIDE), console.width))
        if report.plans is not None:
            console.print(to_rich(plan_table(report), console.width))
        for line in report.summary:
            console.print(line, markup=False, highlight=False)
        headline, detail = decision(report)
        console.print(f"{headline}; {detail}.", markup=False, highlight=False, style="bold")
        console.print(f"wrote {', '.join(sorted(paths))} in {report.run_dir}", markup=False, highlight=False)
    elif options.format == "csv":
        console.file.write(rows_frame(report).to_csv(index=False))
    elif options.format == "markdown":
        console.file.write(markdown(report))
    elif options.format == "json":
        console.file.write(report_json(report) + "\n")
    return report


__all__ = ["Report", "ReportOptions", "render_report"]
