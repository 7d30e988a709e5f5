"""The report's tables as plain cells (shared by terminal, Markdown and HTML) and their rich rendering.

Numbers are shown in plain units (ms, MB, KB, $ and $ per million predictions) with one fixed-point format
per column, chosen from the column's values: no scientific notation beside plain decimals, no ``-0.0000``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rich import box
from rich.table import Table

from costbench.report.build import Report
from costbench.report.compression import comparisons
from costbench.report.names import AXIS_HEADERS, axis_text, display, header, short_header
from costbench.report.planner import Plan
from costbench.report.ranking import interval_names
from costbench.report.rows import Row

HEADLINE = ("auc_delta_vs_fp32", "p99_ms", "serve_cost_per_million_usd", "model_train_mem_mb", "model_bytes")
ROOFLINE = ("gflops", "flops_efficiency")
FOLDING_WIDTH = 12  # the least width given to free text (flags, notes) before other columns give way
RANK_LEGEND = "rank 1 = Pareto front; = marks a tie (identical objectives); * marks the recommended pick"
FREE_TEXT = ("flags", "note", "why not ranked", "reason", "compression")

@dataclass
class TableData:
    """Column headers, formatted cells, and which rows are on the front / the pick."""

    title: str
    headers: list[str]
    cells: list[list[str]]
    front: list[bool]
    pick: list[bool]
    optional: tuple[str, ...] = ()  # headers a narrow terminal may drop, the last one first
    short: dict[str, str] = field(default_factory=dict)  # header -> abbreviation for a terminal
    numeric: tuple[str, ...] = ()  # headers of columns holding numbers: never wrapped


def _no_negative_zero(text: str) -> str:
    return text[1:] if text.startswith("-") and not re.search(r"[1-9]", text) else text


def column_format(metric: str, values: list[float | None]) -> Callable[[float | None], str]:
    """One format for every value of a column: scores with 4 decimals, others fixed-point with enough
    decimals for two significant digits on the column's smallest value, in the shown unit."""
    _, _, unit, factor = display(metric)
    scaled = [abs(v * factor) for v in values if v is not None and math.isfinite(v)]
    if metric.partition("@")[0] == "auc_delta_vs_fp32":
        return lambda v: "n/a" if v is None else f"{v:+.4f}" if re.search(r"[1-9]", f"{v:+.4f}") else "0.0000"
    if not unit and all(x <= 1 for x in scaled):
        decimals = 4
    else:
        smallest = min((x for x in scaled if x > 0), default=1.0)
        decimals = min(8, max(0, 1 - math.floor(math.log10(smallest))))
        if min(scaled, default=0) >= 100 or all(x == int(x) for x in scaled):
            decimals = 0

    def fmt(value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "n/a"
        return _no_negative_zero(f"{value * factor:,.{decimals}f}")

    return fmt


def rank_label(row: Row) -> str:
    if row.rank == 0:
        return "-"
    return f"{row.rank}{'=' if row.tie else ''}{' *' if row.pick else ''}"


def metric_columns(report: Report) -> list[str]:
    """Objectives first, then the headline metrics they leave out that some row has, then the roofline."""
    names = [o.metric for o in report.objectives]
    names += [m for m in HEADLINE if m not in names and any(r.metrics.get(m) is not None for r in report.rows)]
    return names + [m for m in roofline_columns(report) if m not in names]


def roofline_columns(report: Report) -> list[str]:
    """Achieved GFLOP/s and the fraction of the GEMM peak, at the headline batch size when it has them (>= 64),
    else at the largest batch size that has them."""
    have = {name for r in report.rows for name, v in r.metrics.items() if v is not None}
    shown = []
    for base in ROOFLINE:
        batches = [int(b) for name in have for stem, _, b in [name.partition("@")] if stem == base and b.isdigit()]
        if base in have:
            shown.append(base)
        elif batches:
            shown.append(f"{base}@{max(batches)}")
    return shown


def _value_cell(row: Row, metric: str, fmt: Callable[[float | None], str], intervals: bool) -> str:
    text = fmt(row.metrics.get(metric))
    low, high = (row.metrics.get(n) for n in interval_names(metric))
    if intervals and low is not None and high is not None and metric.partition("@")[0] == "auc":
        return f"{text} ± {fmt((high - low) / 2)}"
    if intervals and low is not None and high is not None:
        return f"{text} ({fmt(low)}–{fmt(high)})"
    std = row.std.get(metric)
    return f"{text} ± {fmt(std).lstrip('+')}" if std is not None else text


def trials_table(report: Report, rows: list[Row] | None = None, title: str | None = None,
                 intervals: bool = True) -> TableData:
    """The shown trials (default: all, front members first); ``intervals`` adds 95% intervals to cells."""
    rows = report.rows if rows is None else rows
    metrics = metric_columns(report)
    by = [report.by] if report.by and report.by not in report.axes else []
    formats = {m: column_format(m, [r.metrics.get(m) for r in report.rows]) for m in metrics}
    axis_headers = [AXIS_HEADERS.get(a, (a, a))[0] for a in report.axes]
    proposed = ["proposed by"] if report.search is not None else []
    headers = ["rank", "id", *by, *axis_headers, *(["n"] if report.repeats else []),
               *(header(m) for m in metrics), *proposed, "flags"]
    cells = []
    for row in rows:
        values = [_value_cell(row, m, formats[m], intervals) for m in metrics]
        cells.append([rank_label(row), row.id, *([str(row.by)] if by else []),
                      *(axis_text(row.axes.get(a, "")) for a in report.axes), *([str(row.n)] if report.repeats else []),
                      *values, *([row.proposed_by or "n/a"] if proposed else []), ", ".join(row.flags)])
    if title is None:
        title = f"{report.name}: {len(report.front)} of {len(report.rows)} trial(s) on the Pareto front"
    short = {header(m): short_header(m) for m in metrics}
    short.update({AXIS_HEADERS[a][0]: AXIS_HEADERS[a][1] for a in report.axes if a in AXIS_HEADERS})
    optional = (*axis_headers, *(header(m) for m in metrics[len(report.objectives):]))
    return TableData(title=title, headers=headers, cells=cells, front=[r.rank == 1 for r in rows],
                     pick=[r.pick for r in rows], optional=optional, short=short,
                     numeric=("n", *(header(m) for m in metrics)))


def plan_table(report: Report) -> TableData:
    """The serving planner's result, cheapest monthly total first; ``figure`` says what each plan rests on."""
    plans: list[Plan] = report.plans or []
    headers = ["id", *report.axes, "figure", "p99 (ms)", "throughput (rows/s)", "devices", "device ($/h)",
               "$ per million", "serving ($/month)", "training ($/month)", "total ($/month)", "note"]
    money = "{:,.2f}".format
    p99 = column_format("p99_ms", [p.p99_ms for p in plans])
    rate = column_format("throughput", [p.throughput for p in plans])
    per_million = column_format("serve_cost_per_million_usd", [p.usd_per_million for p in plans])
    cells = [[p.row.id, *(axis_text(p.row.axes.get(a, "")) for a in report.axes),
              p.basis or "n/a", p99(p.p99_ms), rate(p.throughput),
              "n/a" if p.devices is None else str(p.devices),
              "n/a" if p.device_hour_usd is None else money(p.device_hour_usd), per_million(p.usd_per_million),
              *("n/a" if v is None else money(v) for v in (p.serving_usd_month, p.training_usd_month,
                                                           p.total_usd_month)),
              p.note] for p in plans]
    first = [i == 0 and p.total_usd_month is not None and "low-quality" not in p.row.flags
             for i, p in enumerate(plans)]
    return TableData(title=report.plan_title, headers=headers, cells=cells, front=first, pick=first,
                     optional=("serving ($/month)", "training ($/month)", "$ per million", "device ($/h)"),
                     numeric=("p99 (ms)", "throughput (rows/s)", "devices", "device ($/h)", "$ per million",
                              "serving ($/month)", "training ($/month)", "total ($/month)"))


def _cell_width(data: TableData, i: int) -> int:
    return max((len(row[i]) for row in data.cells), default=0)


def header_lines(name: str, width: int = 11) -> str:
    """'train_peak_mem_mb (MB)' -> 'train_peak_\\nmem_mb\\n(MB)': short lines, broken after '_' or ' '."""
    text, _, unit = name.partition(" (")
    lines = [""]
    for part in re.split(r"(?<=[_ ])", text):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join([line.rstrip() for line in lines] + ([f"({unit}"] if unit else []))


def _need(data: TableData, i: int) -> int:
    """Columns a column needs: its widest cell or header line, plus the gap to the next column."""
    name = data.headers[i]
    if name in FREE_TEXT:  # these fold freely
        return FOLDING_WIDTH + 1
    return max(_cell_width(data, i), *(len(line) for line in header_lines(name).split("\n"))) + 1


def fit(data: TableData, width: int) -> tuple[TableData, list[str]]:
    """Abbreviate headers, then drop optional columns (last first) until the table fits ``width``."""
    if sum(_need(data, i) for i in range(len(data.headers))) > width and data.short:
        data = TableData(title=data.title, headers=[data.short.get(h, h) for h in data.headers], cells=data.cells,
                         front=data.front, pick=data.pick, optional=tuple(data.short.get(h, h) for h in data.optional),
                         numeric=tuple(data.short.get(h, h) for h in data.numeric))
    keep = list(range(len(data.headers)))
    dropped: list[str] = []
    for name in reversed(data.optional):
        if sum(_need(data, i) for i in keep) <= width:
            break
        keep.remove(data.headers.index(name))
        dropped.append(name)
    fitted = TableData(title=data.title, headers=[data.headers[i] for i in keep],
                       cells=[[row[i] for i in keep] for row in data.cells], front=data.front, pick=data.pick,
                       numeric=data.numeric)
    return fitted, dropped


def to_rich(data: TableData, width: int) -> Table:
    """Front rows bold green, the pick reversed, so the decision stands out at a glance.

    Headers are abbreviated and columns of lesser importance give way in a narrow terminal (the caption
    says which; report.md has them all). Numbers and ids never wrap: a number broken over two lines reads
    as two numbers. Only free text (flags, notes) folds.
    """
    data, dropped = fit(data, width)
    caption = RANK_LEGEND if data.headers[:1] == ["rank"] else ""
    if dropped:
        caption += f"{'; ' if caption else ''}not shown for lack of width (see report.md): {', '.join(dropped)}"
    table = Table(title=data.title, title_justify="left", caption=caption or None, caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=0)
    for i, name in enumerate(data.headers):
        free = name in FREE_TEXT
        table.add_column(header_lines(name), overflow="fold" if free else "ellipsis", no_wrap=not free,
                         min_width=FOLDING_WIDTH if free else _cell_width(data, i),
                         justify="left" if free or name == "id" or (name not in data.numeric and name != "rank")
                         else "right")
    for cells, front, pick in zip(data.cells, data.front, data.pick, strict=True):
        style = "bold black on green" if pick else "bold green" if front else None
        table.add_row(*cells, style=style)
    return table


def compression_table(report: Report) -> TableData | None:
    """Each compressed trial beside its same-shape scratch model and its teacher (``report.compression``);
    None when the run has no compressed trial. Latency is p50 at the headline batch size."""
    found = comparisons(report.rows)
    if not found:
        return None
    formats = {name: column_format(name, [r.metrics.get(name) for r in report.rows])
               for name in ("auc", "train_cost_usd", "params", "p50_ms")}
    teacher_cost = column_format("train_cost_usd", [c.row.metrics.get("teacher_cost_usd") for c in found])

    def value(row: Row | None, metric: str) -> str:
        return "n/a" if row is None else _value_cell(row, metric, formats[metric], intervals=False)

    def signed(v: float | None) -> str:
        return "n/a" if v is None else _no_negative_zero(f"{v:+.4f}")

    headers = ["id", "compression", "model", "precision", "n", "AUC", "scratch", "scratch AUC", "AUC vs scratch",
               "teacher", "teacher AUC", "AUC vs teacher", "gap closed", "before prune AUC", "train cost ($)",
               "teacher cost ($)", "scratch train cost ($)", "params", "params before prune", "scratch params",
               "p50 (ms)", "p50 before prune (ms)", "scratch p50 (ms)"]
    cells = []
    for c in found:
        row, hp, m = c.row, c.row.details.get("hparams") or {}, c.row.metrics
        model = f"{hp.get('family')} hidden {hp.get('hidden')} emb {hp.get('emb_dim')}" if "hidden" in hp \
            else str(hp.get("family", ""))
        cells.append([row.id, c.what, model, str(row.config.get("precision", "")), str(row.n), value(row, "auc"),
                      c.scratch.id if c.scratch else "not in this run", value(c.scratch, "auc"),
                      signed(c.auc_vs_scratch), c.teacher.id if c.teacher else "n/a",
                      formats["auc"](m.get("teacher_auc")), signed(c.auc_vs_teacher),
                      "n/a" if c.gap_closed is None else f"{c.gap_closed:.0%}", value(c.unpruned, "auc"),
                      value(row, "train_cost_usd"), teacher_cost(m.get("teacher_cost_usd")),
                      value(c.scratch, "train_cost_usd"), value(row, "params"),
                      formats["params"](m.get("params_before_prune")), value(c.scratch, "params"),
                      value(row, "p50_ms"), formats["p50_ms"](m.get("p50_ms_before_prune")),
                      value(c.scratch, "p50_ms")])
    return TableData(title="Compressed trials beside their references (same-shape scratch model, teacher)",
                     headers=headers, cells=cells, front=[c.row.rank == 1 for c in found],
                     pick=[c.row.pick for c in found],
                     numeric=tuple(h for h in headers[4:] if h not in ("scratch", "teacher")))
