"""PNG plots of a report: AUC against each cost, and latency against batch size for the front.

Built on matplotlib's object API (``Figure``), never pyplot: no global state, no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from costbench.pareto import nondominated_ranks
from costbench.record import metric_unit
from costbench.report.build import Report
from costbench.report.rows import Row
from costbench.store import write_atomic

COSTS = ("train_cost_usd", "p99_ms", "train_peak_mem_mb")
MARKERS = {"xs": "v", "s": "o", "m": "s", "l": "D", "xl": "P"}
PRECISION_COLOURS = {"fp32": "tab:blue", "fp16": "tab:orange", "bf16": "tab:green", "int8": "tab:red"}


def write_plots(report: Report, out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Write every plot the data allows; returns {title: path} and a note for each plot left out.

    A plot left out this time is also deleted, so an older one never passes for this run's.
    """
    plots: dict[str, Path] = {}
    notes: list[str] = []
    for cost in COSTS:
        path = out_dir / f"auc_vs_{cost}.png"
        rows = [r for r in report.rows if _xy(r, cost) is not None]
        if rows:
            _quality_against(rows, cost, path)
            plots[f"AUC against {cost}"] = path
        else:
            path.unlink(missing_ok=True)
            notes.append(f"no plot of auc against {cost}: no ranked trial has both")
    path = out_dir / "latency_vs_batch.png"
    front = [r for r in report.front if len(_latency_curve(r)[0]) >= 2]
    if front:
        _latency_against_batch(front, path)
        plots["p99 latency against batch size (front)"] = path
    else:
        path.unlink(missing_ok=True)
        notes.append("no latency-against-batch plot: no front member was measured at two or more batch sizes")
    return plots, notes if report.rows else ["no plots: no trial left to show"]


def _xy(row: Row, cost: str) -> tuple[float, float] | None:
    x, y = row.metrics.get(cost), row.metrics.get("auc")
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and np.isfinite([x, y]).all():
        return float(x), float(y)
    return None


def _quality_against(rows: list[Row], cost: str, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    points = np.array([_xy(r, cost) for r in rows])
    styles = [(str(r.config.get("precision")), str(r.config.get("model", {}).get("size")), r.rank == 1)
              for r in rows]
    for precision, size, on_front in dict.fromkeys(styles):
        mine = points[[i for i, s in enumerate(styles) if s == (precision, size, on_front)]]
        ax.scatter(mine[:, 0], mine[:, 1], c=PRECISION_COLOURS.get(precision, "tab:gray"),
                   marker=MARKERS.get(size, "o"), s=90 if on_front else 45,
                   edgecolors="black" if on_front else "none", linewidths=1.2, zorder=3)
    for row, (x, y) in zip(rows, points, strict=True):
        if row.pick:
            ax.annotate("pick", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    for key in dict.fromkeys(r.by for r in rows):
        mine = points[[i for i, r in enumerate(rows) if r.by == key]]
        edge = mine[nondominated_ranks(mine, ["min", "max"]) == 1]
        edge = edge[np.lexsort((-edge[:, 1], edge[:, 0]))]
        label = "2-D front (AUC vs this cost)" + (f", {key}" if key is not None else "")
        ax.step(edge[:, 0], edge[:, 1], where="post", color="black", alpha=0.6, linewidth=1, label=label)
    ax.set_xlabel(f"{cost} [{metric_unit(cost)}]" if metric_unit(cost) else cost)
    ax.set_ylabel("AUC (test split, served model)")
    ax.set_title(f"AUC against {cost}")
    ax.grid(alpha=0.3)
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], *_legend_keys(rows)], fontsize=7, loc="best")
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))  # a full disk leaves the old plot


def _figure() -> Figure:
    """Fixed margins, not a layout engine: one draw per save keeps a report fast on a busy machine."""
    fig = Figure(figsize=(7.5, 5), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.11, top=0.93)
    return fig


def _in_order(values: set[str], order: list[str]) -> list[str]:
    """Known values in their natural order (fp32 before int8, xs before xl), unknown ones after."""
    return sorted(values, key=lambda v: (v not in order, order.index(v) if v in order else 0, v))


def _legend_keys(rows: list[Row]) -> list[Line2D]:
    precisions = _in_order({str(r.config.get("precision")) for r in rows}, list(PRECISION_COLOURS))
    sizes = _in_order({str(r.config.get("model", {}).get("size")) for r in rows}, list(MARKERS))
    keys = [Line2D([], [], linestyle="", marker="o", color=PRECISION_COLOURS.get(p, "tab:gray"), label=p)
            for p in precisions]
    keys += [Line2D([], [], linestyle="", marker=MARKERS.get(s, "o"), color="gray", label=f"size {s}")
             for s in sizes]
    keys.append(Line2D([], [], linestyle="", marker="o", color="white", markeredgecolor="black",
                       label="on the Pareto front (all objectives)"))
    return keys


def _latency_curve(row: Row) -> tuple[list[int], list[float]]:
    stats = row.batch_stats()
    batches = [b for b, s in stats.items() if "p99_ms" in s]
    return batches, [stats[b]["p99_ms"] for b in batches]


def _latency_against_batch(rows: list[Row], path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    measured: set[int] = set()
    for row in rows:
        batches, p99 = _latency_curve(row)
        measured.update(batches)
        label = " ".join(str(v) for v in row.axes.values()) or row.id
        ax.plot(batches, p99, marker="o", label=f"{row.id} {label}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(measured), [str(b) for b in sorted(measured)])
    ax.set_xlabel("serving batch size [rows per call]")
    ax.set_ylabel("p99 latency [ms]")
    ax.set_title("p99 latency against batch size, Pareto front members")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))  # a full disk leaves the old plot
