"""Exact hypervolume of a set of minimisation points, and the normalisation costbench reports it in.

Our own small computation (slicing on the last objective, recursing on the rest; exact, fine for the
tens to hundreds of points and 2 to 4 objectives of a sweep): Optuna's hypervolume code is private
(``optuna._hypervolume``), and the report must not need Optuna. Objectives are turned into
minimisations (a max objective negated) and scaled to [0, 1] by the min and max over the points
given; the reference point is ``REFERENCE`` on every scaled axis, so the worst point on an axis still
adds volume.
"""

from __future__ import annotations

from collections.abc import Sequence

REFERENCE = 1.1  # on every objective scaled to [0, 1]


def hypervolume(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume dominated by ``points`` (minimisation) and bounded by ``ref``; points not below ``ref``
    on every axis add nothing."""
    pts = sorted({tuple(p) for p in points if all(v < r for v, r in zip(p, ref, strict=True))},
                 key=lambda p: p[-1])
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


def normalise(values: Sequence[Sequence[float]], maximise: Sequence[bool]) -> list[list[float]]:
    """Each point as minimisations scaled to [0, 1] by the min and max over ``values`` (a flat axis: 0)."""
    signed = [[-v if up else v for v, up in zip(point, maximise, strict=True)] for point in values]
    if not signed:
        return []
    lows = [min(axis) for axis in zip(*signed, strict=True)]
    highs = [max(axis) for axis in zip(*signed, strict=True)]
    return [[(x - lo) / ((hi - lo) or 1.0) for x, lo, hi in zip(point, lows, highs, strict=True)]
            for point in signed]


def history(points: Sequence[Sequence[float]], ref: Sequence[float]) -> list[float]:
    """The hypervolume of the first 1, 2, ..., n points: how it grew trial after trial."""
    return [hypervolume(points[:n], ref) for n in range(1, len(points) + 1)]
