"""A search run's hypervolume, point after point, and who proposed each point.

A run is a search when its run.json holds a ``search`` section. The curve follows the points in the
order their records were written (trials.jsonl order), any status: a failed point adds a step and no
volume. Each point's objectives (mean over its repeats) are normalised by costbench.hypervolume over
this run's own ranked points (log10 for an objective spanning more than 10x, max objectives negated,
scaled to [0, 1]); the reference point is 1.1 on each. Reads records only: no Optuna, no torch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costbench.hypervolume import REFERENCE, dominates, hypervolume, log_scaled, normalise
from costbench.pareto import Objective
from costbench.report.rows import Row
from costbench.store import write_atomic, write_text_atomic

HYPERVOLUME_CSV = "hypervolume.csv"
HYPERVOLUME_PNG = "hypervolume.png"
PLOT_TITLE = "Hypervolume against points searched"


@dataclass
class SearchCurve:
    """The hypervolume after each point of a search, and how its points were chosen."""

    sampler: str
    objectives: list[Objective]
    scales: list[str]  # per objective: "log10" or "linear"
    volumes: list[float]  # after the 1st, 2nd, ... point
    proposed_by: Counter[str | None]  # who chose the points: the sampler, "fill-in", or None (not recorded)

    @property
    def caption(self) -> str:
        scaled = ", ".join(f"{o} ({s})" for o, s in zip(self.objectives, self.scales, strict=True))
        return (f"hypervolume of the points searched so far ({self.sampler}): objectives {scaled} as "
                "minimisations scaled to [0, 1] by the min and max over this run's ranked points; reference "
                f"point {REFERENCE:g} on every objective")


def search_curve(records: list[dict[str, Any]], rows: list[Row], objectives: list[Objective],
                 search: dict[str, Any]) -> SearchCurve | None:
    """The curve over the points of ``records`` in file order; None without a point to measure."""
    order = list(dict.fromkeys(str(r.get("group") or r.get("id")) for r in records))
    measured = {r.group: [r.metrics.get(o.metric) for o in objectives] for r in rows}
    measured = {g: [float(v) for v in vs] for g, vs in measured.items()
                if all(isinstance(v, (int, float)) for v in vs)}
    if not order or not measured:
        return None
    keys = list(measured)
    axes = list(zip(*measured.values(), strict=True))
    scaled = dict(zip(keys, normalise([measured[k] for k in keys], [o.direction == "max" for o in objectives]),
                      strict=True))
    ref = [REFERENCE] * len(objectives)
    seen: list[list[float]] = []
    volumes = []
    for group in order:
        point = scaled.get(group)
        if point is not None and not any(dominates(q, point) for q in seen):  # else the volume is unchanged
            seen.append(point)
            volumes.append(hypervolume(seen, ref))
        else:
            volumes.append(volumes[-1] if volumes else 0.0)
    first: dict[str, Any] = {}
    for record in records:
        first.setdefault(str(record.get("group") or record.get("id")), record.get("proposed_by"))
    return SearchCurve(sampler=str(search.get("sampler", "search")), objectives=list(objectives),
                       scales=["log10" if log_scaled(list(a)) else "linear" for a in axes], volumes=volumes,
                       proposed_by=Counter(first.values()))


def write_curve(curve: SearchCurve, out_dir: Path) -> dict[str, Path]:
    """hypervolume.csv (points, hypervolume, share of the last) and hypervolume.png; {title: path}."""
    final = curve.volumes[-1] or 1.0
    lines = ["points,hypervolume,share_of_final"] + [f"{n},{v:.6f},{v / final:.4f}"
                                                     for n, v in enumerate(curve.volumes, start=1)]
    write_text_atomic(out_dir / HYPERVOLUME_CSV, "\n".join(lines) + "\n")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.6), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.16, top=0.88)
    ax = fig.add_subplot(1, 1, 1)
    ax.step(range(1, len(curve.volumes) + 1), curve.volumes, where="post", color="tab:blue")
    ax.set_xlabel("points searched (in the order recorded)")
    ax.set_ylabel("hypervolume")
    ax.set_title(f"{PLOT_TITLE} (reference point {REFERENCE:g}, normalised objectives)", fontsize=10)
    ax.grid(alpha=0.3)
    path = out_dir / HYPERVOLUME_PNG
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    return {PLOT_TITLE: path}


def curve_lines(curve: SearchCurve) -> list[str]:
    """What the report says about the search in words."""
    final = curve.volumes[-1]
    reach = next((n for n, v in enumerate(curve.volumes, start=1) if final and v >= 0.9 * final), None)
    names = {None: "proposer not recorded", "fill-in": "random fill-in"}
    chosen = ", ".join(f"{n} {names.get(who) or f'by {who}'}" for who, n in curve.proposed_by.most_common())
    return [curve.caption, f"{len(curve.volumes)} point(s) searched ({chosen}); final hypervolume {final:.4f}"
            + (f", 90% of it reached after {reach} point(s)" if reach else "")]
