"""Exact hypervolume of a set of minimisation points, and the normalisation costbench reports it in.

Our own small computation (slicing on the last objective, recursing on the rest; exact, fine for the
tens to hundreds of points and 2 to 4 objectives of a sweep): Optuna's hypervolume code is private
(``optuna._hypervolume``), and the report must not need Optuna. Each objective is taken on a log10
scale when its values are positive and span more than ``LOG_SPAN`` (the rule the report's plots use
for a log axis: model bytes or training cost spanning decades would otherwise make every point but
the dearest look free), turned into a minimisation (a max objective negated) and scaled to [0, 1] by
the min and max over the points given; the reference point is ``REFERENCE`` on every scaled axis, so
the worst point on an axis still adds volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

REFERENCE = 1.1  # on every objective scaled to [0, 1]
LOG_SPAN = 10.0  # an objective (or a plotted cost) whose max / min exceeds this is taken on a log scale


def hypervolume(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume dominated by ``points`` (minimisation) and bounded by ``ref``; points not below ``ref``
    on every axis add nothing."""
    pts = sorted(non_dominated({tuple(p) for p in points if all(v < r for v, r in zip(p, ref, strict=True))}),
                 key=lambda p: p[-1])  # a dominated point adds nothing: dropping it keeps the recursion small
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - pts[0][0]
    volume = 0.0
    for i, point in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        if top > point[-1]:  # the slab between this point's last objective and the next one's
            volume += (top - point[-1]) * hypervolume([p[:-1] for p in pts[:i + 1]], ref[:-1])
    return volume


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` on every axis (minimisation): ``b`` adds no volume beside ``a``."""
    return all(x <= y for x, y in zip(a, b, strict=True))


def non_dominated(points: set[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """The distinct points no other point dominates."""
    return [p for p in points if not any(q != p and dominates(q, p) for q in points)]


def log_scaled(axis: Sequence[float]) -> bool:
    """Whether an objective's values are taken on a log scale: all positive, spanning more than LOG_SPAN."""
    return bool(axis) and min(axis) > 0 and max(axis) / min(axis) > LOG_SPAN


def normalise(values: Sequence[Sequence[float]], maximise: Sequence[bool]) -> list[list[float]]:
    """Each point as minimisations scaled to [0, 1] by the min and max over ``values`` (a flat axis: 0),
    an objective spanning more than LOG_SPAN on a log10 scale first."""
    if not values:
        return []
    logs = [log_scaled(axis) for axis in zip(*values, strict=True)]
    signed = [[(-1 if up else 1) * (math.log10(v) if log else v) for v, up, log in zip(point, maximise, logs,
                                                                                       strict=True)]
              for point in values]
    lows = [min(axis) for axis in zip(*signed, strict=True)]
    highs = [max(axis) for axis in zip(*signed, strict=True)]
    return [[(x - lo) / ((hi - lo) or 1.0) for x, lo, hi in zip(point, lows, highs, strict=True)]
            for point in signed]


def history(points: Sequence[Sequence[float]], ref: Sequence[float]) -> list[float]:
    """The hypervolume of the first 1, 2, ..., n points: how it grew trial after trial."""
    return [hypervolume(points[:n], ref) for n in range(1, len(points) + 1)]
