"""PNG plots of a report: AUC against each cost, and latency against batch size for the front.

Every grid axis is shown: colour for precision (or the first axis), marker for model size (or the next),
and one panel per combination of the remaining axes (batch size, family, ...). A cost spanning more than a
decade gets a log axis, so one latency spike cannot squash the other points into a cluster. Legends sit
beside the panels, never on the points. Built on matplotlib's object API (``Figure``), never pyplot.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from costbench.hypervolume import LOG_SPAN
from costbench.pareto import Objective, nondominated_ranks
from costbench.report.names import axis_key, header
from costbench.report.rows import Row
from costbench.store import write_atomic

LATENCY_COSTS = ("p99_ms", "p50_ms", "p99_upper_ms")
MEMORY_COSTS = ("model_train_mem_mb", "train_mem_delta_mb", "train_peak_mem_mb")
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
SIZE_ORDER = ["xs", "s", "m", "l", "xl"]
PRECISION_COLOURS = {"fp32": "tab:blue", "fp16": "tab:orange", "bf16": "tab:green", "int8": "tab:red"}
PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
MAX_PANELS = 9


@dataclass(frozen=True)
class Plot:
    """One plot a report will draw: its title, file name, and what it shows."""

    title: str
    filename: str
    cost: str | None  # None: the latency-against-batch plot


def _slug(metric: str) -> str:
    return metric.replace("@", "_at_")


def plan_plots(rows: list[Row], goals: list[Objective], suffix: str) -> tuple[list[Plot], list[str]]:
    """The plots the rows allow, and a note for each left out (pure: nothing drawn, nothing written)."""
    if not rows:
        return [], ["no plots: no trial left to show"]
    costs = [g.metric for g in goals if g.direction == "min"]
    if not any(c.partition("@")[0] in LATENCY_COSTS for c in costs):
        costs.append("p99_ms")
    if not any(c in MEMORY_COSTS for c in costs):
        costs.append(next((m for m in MEMORY_COSTS if any(r.metrics.get(m) is not None for r in rows)),
                          MEMORY_COSTS[0]))
    plots, notes = [], []
    for cost in dict.fromkeys(costs):
        if any(_xy(r, cost) is not None for r in rows):
            plots.append(Plot(f"AUC against {header(cost)}", f"auc_vs_{_slug(cost)}{suffix}.png", cost))
        else:
            notes.append(f"no plot of auc against {cost}: no ranked trial has both")
    if any(len(_latency_curve(r)[0]) >= 2 for r in rows if r.rank == 1):
        plots.append(Plot("p99 latency against batch size (front)", f"latency_vs_batch{suffix}.png", None))
    else:
        notes.append("no latency-against-batch plot: no front member was measured at two or more batch sizes")
    return plots, notes


def write_plots(rows: list[Row], axes: list[str], plots: list[Plot], out_dir: Path, suffix: str) -> dict[str, Path]:
    """Draw the planned plots; returns {title: path}. Plots of this suffix not planned are deleted,
    so an older one never passes for this run's (a filtered report's plots have their own suffix)."""
    own = re.compile(rf"^(auc_vs_[A-Za-z0-9_]+|latency_vs_batch){re.escape(suffix)}\.png$")
    planned = {p.filename for p in plots}
    for path in out_dir.glob("*.png"):
        if own.match(path.name) and path.name not in planned:
            path.unlink()
    paths = {}
    for plot in plots:
        path = out_dir / plot.filename
        if plot.cost is None:
            _latency_against_batch([r for r in rows if r.rank == 1 and len(_latency_curve(r)[0]) >= 2], path)
        else:
            _quality_against([r for r in rows if _xy(r, plot.cost) is not None], axes, plot.cost, path)
        paths[plot.title] = path
    return paths


def _xy(row: Row, cost: str) -> tuple[float, float] | None:
    x, y = row.metrics.get(cost), row.metrics.get("auc")
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and np.isfinite([x, y]).all():
        return float(x), float(y)
    return None


def _axis(row: Row, axis: str | None) -> Any:
    """A row's value of ``axis`` as a colour, marker or panel key."""
    return axis_key(row.axes.get(axis)) if axis else None


def _in_order(values: list[Any]) -> list[Any]:
    """Values in their natural order (fp32 before int8, xs before xl, 256 before 2048)."""
    known = [*PRECISION_COLOURS, *SIZE_ORDER]
    return sorted(dict.fromkeys(values), key=lambda v: (str(v) not in known, known.index(str(v))
                                                        if str(v) in known else 0, _natural(v)))


def _natural(value: Any) -> tuple[int, float, str]:
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def encoding(rows: list[Row], axes: list[str]) -> tuple[str | None, str | None, list[str]]:
    """Which axis is colour, which is marker, and which become panels."""
    varying = [a for a in axes if len({str(_axis(r, a)) for r in rows}) > 1] or list(axes)
    colour = "precision" if "precision" in varying else (varying[0] if varying else None)
    rest = [a for a in varying if a != colour]
    marker = "model.size" if "model.size" in rest else (rest[0] if rest else None)
    return colour, marker, [a for a in rest if a != marker]


def _quality_against(rows: list[Row], axes: list[str], cost: str, path: Path) -> None:
    colour, marker, facet_axes = encoding(rows, axes)
    facets = _in_order([tuple(_axis(r, a) for a in facet_axes) for r in rows]) if facet_axes else [()]
    note = ""
    if len(facets) > MAX_PANELS:
        note = f"; {', '.join(facet_axes)} not split into panels ({len(facets)} combinations)"
        facet_axes, facets = [], [()]
    colours = _palette(_in_order([_axis(r, colour) for r in rows]) if colour else [])
    markers = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(_in_order([_axis(r, marker) for r in rows]))} \
        if marker else {}
    ncols = min(3, math.ceil(math.sqrt(len(facets))))
    nrows = math.ceil(len(facets) / ncols)
    fig = _figure(4.3 * ncols + 2.6, 3.4 * nrows + 0.9, legend_width=2.6)
    points = np.array([_xy(r, cost) for r in rows])
    xs = points[:, 0]
    log = bool((xs > 0).all() and xs.max() / xs.min() > LOG_SPAN)
    edge = points[nondominated_ranks(points, ["min", "max"]) == 1]
    edge = edge[np.lexsort((-edge[:, 1], edge[:, 0]))]
    first_ax = None
    for index, facet in enumerate(facets):
        ax = fig.add_subplot(nrows, ncols, index + 1, sharex=first_ax, sharey=first_ax)
        first_ax = first_ax or ax
        mine = [i for i, r in enumerate(rows) if tuple(_axis(r, a) for a in facet_axes) == facet]
        ax.step(edge[:, 0], edge[:, 1], where="post", color="gray", alpha=0.5, linewidth=1, zorder=1)
        for i in mine:
            row = rows[i]
            ax.scatter(points[i, 0], points[i, 1], c=colours.get(_axis(row, colour), "tab:gray"),
                       marker=markers.get(_axis(row, marker), "o"), s=80 if row.rank == 1 else 36,
                       edgecolors="black" if row.rank == 1 else "none", linewidths=1.1, zorder=3)
            if row.pick:
                ax.annotate("pick", (points[i, 0], points[i, 1]), textcoords="offset points", xytext=(7, 7),
                            fontsize=8, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8})
        if log:
            ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(", ".join(f"{a}={v}" for a, v in zip(facet_axes, facet, strict=True)) or "all trials",
                     fontsize=9)
        if index % ncols == 0:
            ax.set_ylabel("AUC (test split)")
        if index >= len(facets) - ncols:
            ax.set_xlabel(header(cost) + (" (log scale)" if log else ""))
    fig.suptitle(f"AUC against {header(cost)}{' (log scale)' if log else ''}{note}", fontsize=11)
    handles = _legend(colour, colours, marker, markers)
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))  # a full disk leaves the old plot


def _palette(values: list[Any]) -> dict[Any, str]:
    free = iter(c for c in PALETTE if c not in {PRECISION_COLOURS.get(str(v)) for v in values})
    return {v: PRECISION_COLOURS.get(str(v)) or next(free, "tab:gray") for v in values}


def _legend(colour: str | None, colours: dict[Any, str], marker: str | None, markers: dict[Any, str]) -> list[Any]:
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], linestyle="", marker="o", color=c, label=f"{colour}={v}") for v, c in colours.items()]
    keys += [Line2D([], [], linestyle="", marker=m, color="gray", label=f"{marker}={v}") for v, m in markers.items()]
    keys.append(Line2D([], [], linestyle="", marker="o", color="white", markeredgecolor="black",
                       label="Pareto front (all objectives)"))
    keys.append(Line2D([], [], color="gray", alpha=0.5, label="2-D front of all panels\n(AUC vs this cost)"))
    return keys


def _figure(width: float, height: float, legend_width: float) -> Any:
    """Fixed margins, not a layout engine: one draw per save keeps a report fast on a busy machine."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(left=0.9 / width, right=1 - (legend_width + 0.2) / width, bottom=0.75 / height,
                        top=1 - 0.6 / height, wspace=0.25, hspace=0.45)
    return fig


def _latency_curve(row: Row) -> tuple[list[int], list[float]]:
    stats = row.batch_stats()
    batches = [b for b, s in stats.items() if "p99_ms" in s]
    return batches, [stats[b]["p99_ms"] for b in batches]


def _latency_against_batch(rows: list[Row], path: Path) -> None:
    fig = _figure(10.0, 5.0, legend_width=3.4)
    ax = fig.add_subplot()
    measured: set[int] = set()
    styles = itertools.cycle(itertools.product(["-", "--", ":"], PALETTE))
    for row in rows:
        batches, p99 = _latency_curve(row)
        measured.update(batches)
        line, colour = next(styles)
        label = " ".join(str(v) for v in row.axes.values()) or row.id
        ax.plot(batches, p99, marker="o", linestyle=line, color=colour, label=f"{label} ({row.id[:6]})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(measured), [str(b) for b in sorted(measured)])
    ax.set_xlabel("serving batch size [rows per call]")
    ax.set_ylabel("p99 latency [ms] (log scale)")
    ax.set_title("p99 latency against batch size, Pareto front members")
    ax.grid(alpha=0.3, which="both")
    fig.legend(loc="center right", fontsize=7, frameon=False)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))  # a full disk leaves the old plot
