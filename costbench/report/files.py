"""The files a report leaves in the run directory: CSVs, Markdown, a self-contained HTML page, PNGs."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from costbench.report.build import Report
from costbench.report.planner import PLAN_RULE
from costbench.report.plots import write_plots
from costbench.report.rows import flatten
from costbench.report.table import RANK_LEGEND, TableData, plan_table, trials_table
from costbench.store import write_atomic, write_text_atomic

TRIALS_CSV = "trials.csv"
PARETO_CSV = "pareto.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def write_files(report: Report) -> dict[str, Path]:
    """Write every file (plots first: the Markdown and HTML show them); returns {name: path}."""
    out = report.run_dir
    report.plots, notes = write_plots(report, out)
    report.summary += notes
    paths = {TRIALS_CSV: out / TRIALS_CSV, PARETO_CSV: out / PARETO_CSV, REPORT_MD: out / REPORT_MD,
             REPORT_HTML: out / REPORT_HTML}
    # each file whole or not at all (temp file + rename): a full disk leaves the previous report
    write_atomic(paths[TRIALS_CSV], lambda tmp: records_frame(report).to_csv(tmp, index=False))
    write_atomic(paths[PARETO_CSV], lambda tmp: rows_frame(report, front_only=True).to_csv(tmp, index=False))
    write_text_atomic(paths[REPORT_MD], markdown(report))
    write_text_atomic(paths[REPORT_HTML], html_page(report))
    return {**paths, **{p.name: p for p in report.plots.values()}}


def _cell(value: Any) -> Any:
    """Lists and dicts become JSON text, so a CSV cell reads back as what was written."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def records_frame(report: Report) -> pd.DataFrame:
    """Every record, any status, flattened with dotted names, plus its row's rank and flags."""
    by_group = {r.group: r for r in report.rows}
    lines = []
    for record in report.records:
        row = by_group.get(record.get("group"))
        line = {k: record.get(k) for k in ("id", "group", "repeat", "status", "reason", "started_at",
                                           "finished_at", "host", "concurrent_trials")}
        line.update({"rank": row.rank if row else None, "flags": ", ".join(row.flags) if row else None})
        for section in ("axes", "config", "metrics"):
            line.update({f"{section}.{k}": _cell(v) for k, v in flatten(record.get(section) or {}).items()})
        lines.append(line)
    return pd.DataFrame(lines)


def rows_frame(report: Report, front_only: bool = False) -> pd.DataFrame:
    """One line per shown row with raw numbers: rank, tie, pick, axes, metric means (and stds)."""
    rows = report.front if front_only else report.rows
    metrics = list(dict.fromkeys(m for r in report.rows for m in r.metrics))
    lines = []
    for row in rows:
        line: dict[str, Any] = {"rank": row.rank, "tie": row.tie, "pick": row.pick, "id": row.id,
                                "group": row.group, "n": row.n}
        if report.by:
            line[f"by.{report.by}"] = row.by
        line.update({a: _cell(row.axes.get(a)) for a in report.axes})
        for m in metrics:
            line[m] = row.metrics.get(m)
            if report.repeats:
                line[f"{m}_std"] = row.std.get(m)
        line["flags"] = ", ".join(row.flags)
        lines.append(line)
    return pd.DataFrame(lines, columns=None if lines else ["rank", "tie", "pick", "id", "group", "n"])


def report_json(report: Report) -> str:
    """The report as one JSON document (n/a as null)."""
    frame = rows_frame(report)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in line.items()}
            for line in frame.to_dict(orient="records")]
    plans = [{"id": p.row.id, **{k: v for k, v in vars(p).items() if k != "row"}} for p in report.plans or []]
    return json.dumps({"run": report.name, "objectives": [str(o) for o in report.objectives],
                       "by": report.by, "summary": report.summary, "warnings": report.warnings,
                       "rows": rows, "plan": plans if report.plans is not None else None}, indent=2,
                      default=str)


def markdown_table(data: TableData) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("*", "\\*")

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    body = [line([f"**{escape(c)}**" if front and c else escape(c) for c in cells])
            for cells, front in zip(data.cells, data.front, strict=True)]
    return "\n".join([line([escape(h) for h in data.headers]), line(["---"] * len(data.headers)), *body])


def markdown(report: Report) -> str:
    parts = [f"# costbench report: {report.name}", "", *(f"- {s}" for s in report.summary)]
    parts += [f"- warning: {w}" for w in report.warnings]
    table = trials_table(report)
    parts += ["", f"## {table.title}", "", RANK_LEGEND + "; front rows in bold.", "", markdown_table(table)]
    if report.plans is not None:
        parts += ["", f"## {report.plan_title}", "", _plan_summary(report), "", markdown_table(plan_table(report))]
    if report.plots:
        parts += ["", "## Plots", ""]
        parts += [f"![{title}]({path.name})\n" for title, path in report.plots.items()]
    return "\n".join(parts) + "\n"


def _plan_summary(report: Report) -> str:
    if report.plans and all(p.batch_size is None for p in report.plans):
        return f"No front member meets the SLO at any measured batch size. Rule: {PLAN_RULE}."
    return f"Rule: {PLAN_RULE}."


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}
tr.front td{background:#e6f4e6;font-weight:bold}
tr.pick td{background:#9fd89f}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
"""


def html_table(data: TableData) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in data.headers)
    body = []
    for cells, front, pick in zip(data.cells, data.front, data.pick, strict=True):
        css = ' class="pick"' if pick else ' class="front"' if front else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><caption>{html.escape(data.title)}</caption><thead><tr>{head}</tr></thead>" \
           f"<tbody>{''.join(body)}</tbody></table>"


def html_page(report: Report) -> str:
    """One file with everything inline (styles, tables, PNGs as data URIs): opens from disk, no network."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>costbench: {esc(report.name)}</title>",
             f"<style>{_CSS}</style></head><body><h1>costbench report: {esc(report.name)}</h1><ul>"]
    parts += [f"<li>{esc(s)}</li>" for s in report.summary]
    parts += [f"<li><b>warning:</b> {esc(w)}</li>" for w in report.warnings]
    parts += ["</ul>", f"<p>{esc(RANK_LEGEND)}; front rows highlighted.</p>", html_table(trials_table(report))]
    if report.plans is not None:
        parts += [f"<h2>{esc(report.plan_title)}</h2><p>{esc(_plan_summary(report))}</p>",
                  html_table(plan_table(report))]
    for title, path in report.plots.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
