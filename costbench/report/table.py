"""The report's tables as plain cells (shared by terminal, Markdown and HTML) and their rich rendering."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich import box
from rich.table import Table

from costbench.record import metric_unit
from costbench.report.build import Report
from costbench.report.planner import Plan
from costbench.report.rows import Row

HEADLINE = ("auc", "auc_delta_vs_fp32", "p99_ms", "throughput", "train_cost_usd", "model_bytes")
FOLDING_WIDTH = 12  # the least width given to free text (flags, notes) before other columns give way
RANK_LEGEND = "rank 1 = Pareto front; = marks a tie (identical objectives); * marks the recommended pick"


@dataclass
class TableData:
    """Column headers, formatted cells, and which rows are on the front / the pick."""

    title: str
    headers: list[str]
    cells: list[list[str]]
    front: list[bool]
    pick: list[bool]
    optional: tuple[str, ...] = ()  # headers a narrow terminal may drop, the last one first


def header(metric: str) -> str:
    unit = metric_unit(metric)
    return f"{metric} ({unit})" if unit else metric


def format_value(metric: str, value: float | None) -> str:
    """A metric for reading: 4 decimals for unitless scores, thousands separators for big numbers."""
    if value is None:
        return "n/a"
    if metric.startswith("auc_delta"):
        return f"{value:+.4f}"
    if not metric_unit(metric) and abs(value) <= 1:
        return f"{value:.4f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def rank_label(row: Row) -> str:
    if row.rank == 0:
        return "-"
    return f"{row.rank}{'=' if row.tie else ''}{' *' if row.pick else ''}"


def metric_columns(report: Report) -> list[str]:
    """Objectives first, then the headline metrics they leave out that some row has."""
    names = [o.metric for o in report.objectives]
    return names + [m for m in HEADLINE if m not in names
                    and any(r.metrics.get(m) is not None for r in report.rows)]


def trials_table(report: Report) -> TableData:
    """Every shown trial, front members first."""
    metrics = metric_columns(report)
    by = [report.by] if report.by and report.by not in report.axes else []
    headers = ["rank", "id", *by, *report.axes,
               *(["n"] if report.repeats else []), *(header(m) for m in metrics), "flags"]
    cells = []
    for row in report.rows:
        values = []
        for m in metrics:
            text = format_value(m, row.metrics.get(m))
            std = row.std.get(m)
            values.append(f"{text} ± {format_value(m, std).lstrip('+')}" if std is not None else text)
        cells.append([rank_label(row), row.id, *([str(row.by)] if by else []),
                      *(str(row.axes.get(a, "")) for a in report.axes), *([str(row.n)] if report.repeats else []),
                      *values, ", ".join(row.flags)])
    title = f"{report.name}: {len(report.front)} of {len(report.rows)} trial(s) on the Pareto front"
    optional = tuple(header(m) for m in metrics[len(report.objectives):])
    return TableData(title=title, headers=headers, cells=cells, front=[r.rank == 1 for r in report.rows],
                     pick=[r.pick for r in report.rows], optional=optional)


def plan_table(report: Report) -> TableData:
    """The serving planner's result, cheapest monthly total first."""
    plans: list[Plan] = report.plans or []
    headers = ["id", *report.axes, "batch", "p99 (ms)", "throughput (rows/s)", "devices", "device ($/h)",
               "serving ($/month)", "training ($/month)", "total ($/month)", "note"]
    money = "{:,.2f}".format
    cells = [[p.row.id, *(str(p.row.axes.get(a, "")) for a in report.axes),
              "n/a" if p.batch_size is None else str(p.batch_size), format_value("p99_ms", p.p99_ms),
              format_value("throughput", p.throughput), "n/a" if p.devices is None else str(p.devices),
              *("n/a" if v is None else money(v) for v in (p.device_hour_usd, p.serving_usd_month,
                                                           p.training_usd_month, p.total_usd_month)),
              p.note] for p in plans]
    first = [i == 0 and p.total_usd_month is not None for i, p in enumerate(plans)]
    return TableData(title=report.plan_title, headers=headers, cells=cells, front=first, pick=first,
                     optional=("serving ($/month)", "training ($/month)", "device ($/h)"))


def _cell_width(data: TableData, i: int) -> int:
    return max((len(row[i]) for row in data.cells), default=0)


def header_lines(name: str, width: int = 11) -> str:
    """'train_peak_mem_mb (MB)' -> 'train_peak_\nmem_mb\n(MB)': short lines, broken after underscores."""
    text, _, unit = name.partition(" (")
    lines = [""]
    for part in re.split(r"(?<=_)", text):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines + ([f"({unit}"] if unit else []))


def _need(data: TableData, i: int) -> int:
    """Columns a column needs: its widest cell or header line, plus the gap to the next column."""
    name = data.headers[i]
    if name in ("flags", "note"):  # these fold freely
        return FOLDING_WIDTH + 2
    return max(_cell_width(data, i), *(len(line) for line in header_lines(name).split("\n"))) + 2


def fit(data: TableData, width: int) -> tuple[TableData, list[str]]:
    """Drop optional columns (last first) until the table fits ``width``; returns it and what was dropped."""
    keep = list(range(len(data.headers)))
    dropped: list[str] = []
    for name in reversed(data.optional):
        if sum(_need(data, i) for i in keep) <= width:
            break
        keep.remove(data.headers.index(name))
        dropped.append(name)
    fitted = TableData(title=data.title, headers=[data.headers[i] for i in keep],
                       cells=[[row[i] for i in keep] for row in data.cells], front=data.front, pick=data.pick)
    return fitted, dropped


def _fits(data: TableData, width: int) -> bool:
    return sum(_need(data, i) for i in range(len(data.headers))) <= width


def to_rich(data: TableData, width: int) -> Table:
    """Front rows bold green, the pick reversed, so the decision stands out at a glance.

    Units go on a second header line, and columns of lesser importance give way in a narrow terminal
    (the caption says which; report.md has them all). Numbers never fold unless even the essential
    columns cannot fit, where folding beats cutting columns off.
    """
    data, dropped = fit(data, width)
    fits = _fits(data, width)
    caption = RANK_LEGEND if data.headers[0] == "rank" else ""
    if dropped:
        caption += f"{'; ' if caption else ''}not shown for lack of width (see report.md): {', '.join(dropped)}"
    table = Table(title=data.title, title_justify="left", caption=caption or None, caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, name in enumerate(data.headers):
        table.add_column(header_lines(name), overflow="fold",
                         min_width=None if not fits else FOLDING_WIDTH if name in ("flags", "note")
                         else _cell_width(data, i),
                         justify="left" if name in ("id", "flags", "note") else "right")
    for cells, front, pick in zip(data.cells, data.front, data.pick, strict=True):
        style = "bold black on green" if pick else "bold green" if front else None
        table.add_row(*cells, style=style)
    return table
