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
from costbench.report.decision import decision
from costbench.report.machine import machine_lines
from costbench.report.names import axis_text, header
from costbench.report.planner import PLAN_RULE
from costbench.report.plots import write_plots
from costbench.report.rows import flatten
from costbench.report.search_view import HYPERVOLUME_CSV, HYPERVOLUME_PNG, PLOT_TITLE, curve_lines, write_curve
from costbench.report.svg import scatter_svg
from costbench.report.table import (
    FREE_TEXT,
    RANK_LEGEND,
    TableData,
    compression_table,
    plan_table,
    trials_table,
)
from costbench.store import write_atomic, write_text_atomic

TRIALS_CSV = "trials.csv"
PARETO_CSV = "pareto.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def output_names(suffix: str) -> dict[str, str]:
    """The file names a report writes: report.html, or report-where-<slug>.html for a filtered one."""
    return {name: f"{stem}{suffix}.{ext}" for name in (TRIALS_CSV, PARETO_CSV, REPORT_MD, REPORT_HTML)
            for stem, ext in [name.rsplit(".", 1)]}


def write_files(report: Report) -> dict[str, Path]:
    """Write every file (plots first: the Markdown and HTML show them); returns {file name: path}."""
    out = report.run_dir
    plots = write_plots(report.rows, report.axes, report.plots, out, report.suffix)
    if report.search is not None:
        plots.update(write_curve(report.search, out))
        plots.update({HYPERVOLUME_CSV: out / HYPERVOLUME_CSV})
    names = output_names(report.suffix)
    paths = {names[k]: out / names[k] for k in names}
    # each file whole or not at all (temp file + rename): a full disk leaves the previous report
    write_atomic(paths[names[TRIALS_CSV]], lambda tmp: records_frame(report).to_csv(tmp, index=False))
    write_atomic(paths[names[PARETO_CSV]], lambda tmp: rows_frame(report, front_only=True).to_csv(tmp, index=False))
    write_text_atomic(paths[names[REPORT_MD]], markdown(report))
    write_text_atomic(paths[names[REPORT_HTML]], html_page(report, plots))
    return {**paths, **{p.name: p for p in plots.values()}}


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
                                           "finished_at", "host", "concurrent_trials", "env_id", "data_id",
                                           "proposed_by")}
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
                                "group": row.group, "n": row.n, "env_id": row.env_id, "data_id": row.data_id}
        if report.search is not None:
            line["proposed_by"] = row.proposed_by
        if report.by:
            line[f"by.{report.by}"] = row.by
        line.update({a: _cell(row.axes.get(a)) for a in report.axes})
        for m in metrics:
            column = f"metrics.{m}" if m in report.axes else m  # the metric 'precision' beside the axis
            line[column] = row.metrics.get(m)
            if report.repeats:
                line[f"{column}_std"] = row.std.get(m)
        line["flags"] = ", ".join(row.flags)
        lines.append(line)
    return pd.DataFrame(lines, columns=None if lines else ["rank", "tie", "pick", "id", "group", "n"])


def report_json(report: Report) -> str:
    """The report as one JSON document (n/a as null)."""
    frame = rows_frame(report)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in line.items()}
            for line in frame.to_dict(orient="records")]
    plans = [{"id": p.row.id, **{k: v for k, v in vars(p).items() if k != "row"}} for p in report.plans or []]
    headline, detail = decision(report)
    return json.dumps({"run": report.name, "description": report.description,
                       "decision": f"{headline}; {detail}", "objectives": [str(o) for o in report.objectives],
                       "by": report.by, "summary": report.summary, "warnings": report.warnings,
                       "rows": rows, "plan": plans if report.plans is not None else None,
                       "not_ok": [{k: r.get(k) for k in ("id", "status", "reason")} for r in report.not_ok],
                       "earlier": [{k: r.get(k) for k in ("id", "status", "why_not_ranked")} for r in report.earlier]},
                      indent=2,
                      default=str)


def markdown_table(data: TableData) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("*", "\\*")

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    body = [line([f"**{escape(c)}**" if front and c else escape(c) for c in cells])
            for cells, front in zip(data.cells, data.front, strict=True)]
    return "\n".join([line([escape(h) for h in data.headers]), line(["---"] * len(data.headers)), *body])


COMPRESSION_LEGEND = ("scratch: the trial of this run with the same model shape and config, trained without "
                      "compress (before prune AUC: the one of the shape before pruning); gap closed = (AUC - "
                      "scratch AUC) / (teacher AUC - scratch AUC); train cost includes the teacher's; latency is "
                      "p50 at the headline batch size, before prune measured in the same trial on the same runtime")


def markdown(report: Report) -> str:
    headline, detail = decision(report)
    parts = [f"# costbench report: {report.name}", ""]
    if report.description:
        parts += [report.description, ""]
    parts += [f"**{headline}**; {detail}.", "", *(f"- {s}" for s in report.summary)]
    parts += [f"- warning: {w}" for w in report.warnings]
    table = trials_table(report)
    parts += ["", f"## {table.title}", "", RANK_LEGEND + "; front rows in bold.", "", markdown_table(table)]
    if compressed := compression_table(report):
        parts += ["", f"## {compressed.title}", "", COMPRESSION_LEGEND, "", markdown_table(compressed)]
    if report.not_ok:
        parts += ["", "## Failed and skipped trials", "", markdown_table(not_ok_table(report))]
    if report.earlier:
        parts += ["", "## Records from an earlier version of this sweep (not ranked)", "",
                  markdown_table(earlier_table(report))]
    if report.plans is not None:
        parts += ["", f"## {report.plan_title}", "", _plan_summary(report), "", markdown_table(plan_table(report))]
    if report.search is not None:
        parts += ["", "## The search", "", *(f"- {s}" for s in curve_lines(report.search)),
                  "", f"![{PLOT_TITLE}]({HYPERVOLUME_PNG})", "", f"Every value: {HYPERVOLUME_CSV}."]
    if report.plots:
        parts += ["", "## Plots", ""]
        parts += [f"![{plot.title}]({plot.filename})\n" for plot in report.plots]
    parts += ["", "## Machine", "", *(f"- {line}" for line in machine_lines(report))]
    return "\n".join(parts) + "\n"


def _record_cells(report: Report, record: dict[str, Any]) -> list[str]:
    axes = record.get("axes") or {}
    return [str(record.get("id")), *(axis_text(axes.get(a, "")) for a in report.axes)]


def not_ok_table(report: Report) -> TableData:
    """Failed and skipped trials with their reasons: an all-failed run shows these, not an empty table."""
    headers = ["id", *report.axes, "status", "reason"]
    cells = [[*_record_cells(report, r), str(r.get("status")), str(r.get("reason") or "no reason recorded")]
             for r in report.not_ok]
    return TableData(title="Failed and skipped trials", headers=headers, cells=cells, front=[False] * len(cells),
                     pick=[False] * len(cells))


def earlier_table(report: Report) -> TableData:
    headers = ["id", *report.axes, "status", "finished", "why not ranked"]
    cells = [[*_record_cells(report, r), str(r.get("status")), str(r.get("finished_at") or ""),
              str(r.get("why_not_ranked", ""))] for r in report.earlier]
    return TableData(title="Records from an earlier version of this sweep", headers=headers, cells=cells,
                     front=[False] * len(cells), pick=[False] * len(cells))


def _plan_summary(report: Report) -> str:
    if report.plans and all(p.devices is None for p in report.plans):
        return (f"No front member meets the SLO: no server-scenario figure at it and no measured batch size. "
                f"Rule: {PLAN_RULE}.")
    return f"Rule: {PLAN_RULE}."


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1360px;padding:0 12px;color:#222}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em}
.description{color:#444;font-size:1.05em}
.card{border:2px solid #2e7d32;background:#eef7ee;border-radius:8px;padding:.8em 1.1em;margin:1em 0}
.card.none{border-color:#b71c1c;background:#fbeeee}
.card .headline{font-size:1.2em;font-weight:600}.card .detail{margin-top:.3em;color:#333}
table{border-collapse:collapse;font-size:13px;margin:.5em 0;max-width:100%}
caption{text-align:left;font-weight:600;padding:.2em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;white-space:normal;vertical-align:bottom}
td.text{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:7em;max-width:30em}
td.id{font-family:ui-monospace,monospace;text-align:left}
tr.front td{background:#e6f4e6}
tr.pick td{background:#9fd89f;font-weight:bold}
ul.summary{font-size:13px;color:#333}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
svg.scatter{max-width:100%;height:auto;border:1px solid #ddd}
details summary{cursor:pointer;font-weight:600;margin:.6em 0}
"""


def html_table(data: TableData) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in data.headers)
    kinds = ["text" if h in FREE_TEXT else "id" if h == "id" else "" for h in data.headers]
    body = []
    for cells, front, pick in zip(data.cells, data.front, data.pick, strict=True):
        css = ' class="pick"' if pick else ' class="front"' if front else ""
        body.append(f"<tr{css}>" + "".join(f"<td class='{k}'>{html.escape(c)}</td>" if k else
                                           f"<td>{html.escape(c)}</td>" for c, k in zip(cells, kinds, strict=True))
                    + "</tr>")
    return f"<table><caption>{html.escape(data.title)}</caption><thead><tr>{head}</tr></thead>" \
           f"<tbody>{''.join(body)}</tbody></table>"


def html_page(report: Report, plots: dict[str, Path]) -> str:
    """One file with everything inline (styles, tables, PNGs as data URIs, an SVG scatter): opens from disk."""
    esc = html.escape
    headline, detail = decision(report)
    card = "card" if report.pick is not None else "card none"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>costbench: {esc(report.name)}</title>",
             f"<style>{_CSS}</style></head><body><h1>costbench report: {esc(report.name)}</h1>"]
    if report.description:
        parts.append(f"<p class='description'>{esc(report.description)}</p>")
    parts.append(f"<div id='decision' class='{card}'><div class='headline'>{esc(headline)}</div>"
                 f"<div class='detail'>{esc(detail[:1].upper() + detail[1:])}.</div></div>")
    parts += [f"<p><b>warning:</b> {esc(w)}</p>" for w in report.warnings]
    front = report.front
    others = [r for r in report.rows if r.rank != 1]
    if front:
        parts += [f"<p>{esc(RANK_LEGEND)}; the pick is highlighted.</p>",
                  html_table(trials_table(report, front, title=f"Pareto front: {len(front)} of "
                                                               f"{len(report.rows)} trial(s)"))]
    if others:
        parts += [f"<details><summary>The other {len(others)} trial(s), not on the front</summary>",
                  html_table(trials_table(report, others, title="Trials not on the front")), "</details>"]
    if compressed := compression_table(report):
        parts += [f"<h2>{esc(compressed.title)}</h2><p>{esc(COMPRESSION_LEGEND)}</p>", html_table(compressed)]
    if report.not_ok:
        parts += ["<h2>Failed and skipped trials</h2>", html_table(not_ok_table(report))]
    if report.earlier:
        parts += ["<h2>Records from an earlier version of this sweep (not ranked)</h2>",
                  html_table(earlier_table(report))]
    if report.plans is not None:
        parts += [f"<h2>{esc(report.plan_title)}</h2><p>{esc(_plan_summary(report))}</p>",
                  html_table(plan_table(report))]
    scatter_cost = next((o.metric for o in report.objectives if o.metric.startswith("p99_ms")), "p99_ms")
    if svg := scatter_svg(report.rows, scatter_cost):
        parts += [f"<h2>AUC against {esc(header(scatter_cost))} (hover a point for its configuration)</h2>", svg]
    if report.search is not None:
        parts += ["<h2>The search</h2><ul>",
                  *(f"<li>{esc(s)}</li>" for s in curve_lines(report.search)), "</ul>"]
    for title, path in plots.items():
        if path.suffix != ".png":
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{data}'>")
    parts += ["<h2>Machine</h2><ul>", *(f"<li>{esc(line)}</li>" for line in machine_lines(report)), "</ul>"]
    parts += ["<h2>How to read this report</h2><ul class='summary'>",
              *(f"<li>{esc(s)}</li>" for s in report.summary), "</ul>", "</body></html>"]
    return "\n".join(parts)
