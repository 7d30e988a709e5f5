"""Non-dominated sorting: which trials no other trial beats on every objective at once.

A point *dominates* another when it is at least as good on every objective and strictly better on one.
Rank 1 is the Pareto front; rank 2 is the front once rank 1 is removed, and so on. Identical points never
dominate each other, so they share a rank and are marked as ties. Points with a missing (NaN) objective
get no rank and are counted, never guessed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_TIE_TOLERANCE = 0.001  # AUC: differences this small are not worth paying for


def pick_rule(first: str, tolerance: float) -> str:
    """The pick rule in words, for the report's summary."""
    return (f"recommended pick = practical equivalence, then cost priority: among the front members that pass "
            f"the quality gates, every one whose {first} is within {tolerance:g} of the best, or whose 95% "
            f"interval overlaps the best's, counts as a tie; among the ties the next objectives decide, in the "
            f"order stated")


@dataclass(frozen=True)
class Objective:
    """One objective: a numeric field and whether bigger or smaller is better."""

    metric: str
    direction: str  # "max" | "min"

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"objective '{self.metric}': direction must be 'max' or 'min', not {self.direction!r}")

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


@dataclass
class Fronts:
    """Ranks of many points, computed group by group; index i is the i-th input point."""

    rank: np.ndarray  # int, 0 = no rank (a missing objective)
    tie: np.ndarray  # bool: an identical objective vector shares this point's rank
    pick: np.ndarray  # bool: the recommended point of its group
    missing: dict[str, int] = field(default_factory=dict)  # objective metric -> points left out for it


def as_minimisation(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Flip 'max' columns so that smaller is better everywhere."""
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return np.asarray(values, dtype=float) * signs


def dominance_matrix(costs: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point i dominates point j (all costs <=, one <); costs are minimised."""
    le = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)
    lt = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    return le & lt


def nondominated_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Front rank (1, 2, ...) of every row of a finite ``[n, k]`` array; O(n^2 k) memory and time per rank."""
    values = np.asarray(values, dtype=float).reshape(len(values), len(directions))
    if not np.isfinite(values).all():
        raise ValueError("nondominated_ranks needs finite values; leave out points with missing objectives")
    dominates = dominance_matrix(as_minimisation(values, directions))
    ranks = np.zeros(len(values), dtype=int)
    remaining = np.ones(len(values), dtype=bool)
    rank = 0
    while remaining.any():
        rank += 1
        dominated = dominates[remaining].any(axis=0)
        front = remaining & ~dominated
        ranks[front] = rank
        remaining &= ~front
    return ranks


def tied(values: np.ndarray) -> np.ndarray:
    """True for each row whose objective vector equals another row's exactly."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    _, inverse, counts = np.unique(values, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] > 1


def pick_index(values: np.ndarray, directions: Sequence[str], candidates: np.ndarray | None = None,
               tolerance: float = 0.0, low: np.ndarray | None = None, high: np.ndarray | None = None) -> int | None:
    """Index of the recommended point among ``values`` (see ``pick_rule``), or None without a candidate.

    Column 0 is the quality objective; ``low``/``high`` its interval per point (NaN where unknown).
    Points whose column 0 is within ``tolerance`` of the best candidate's, or whose interval overlaps
    the best's, are ties; the remaining columns then decide lexicographically (first one on a full tie).
    """
    costs = as_minimisation(values, directions)
    n = len(costs)
    allowed = np.ones(n, dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    if n == 0 or not allowed.any():
        return None
    pool = np.flatnonzero(allowed)
    best = pool[np.argmin(costs[pool, 0])]
    lows = np.full(n, np.nan) if low is None else np.asarray(low, dtype=float)
    highs = np.full(n, np.nan) if high is None else np.asarray(high, dtype=float)
    # in minimisation form a 'max' interval [low, high] becomes [-high, -low]
    if directions[0] == "max":
        lows, highs = -highs, -lows
    close = costs[pool, 0] - costs[best, 0] <= tolerance + 1e-12
    # a point without an interval is the interval of its own value
    lows, highs = np.where(np.isnan(lows), costs[:, 0], lows), np.where(np.isnan(highs), costs[:, 0], highs)
    overlap = (lows[pool] <= highs[best]) & (lows[best] <= highs[pool])
    ties = pool[close | overlap]
    order = np.lexsort([costs[ties, 0], *(costs[ties, j] for j in range(costs.shape[1] - 1, 0, -1))])
    return int(ties[order[0]])


def compute_fronts(
    values: np.ndarray,
    objectives: Sequence[Objective],
    groups: Sequence[Hashable] | None = None,
    pick_candidates: np.ndarray | None = None,
    tolerance: float = 0.0,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> Fronts:
    """Ranks, ties and at most one pick per group for ``[n, k]`` values (NaN = missing, left out and counted).

    ``pick_candidates`` (bool per point) restricts the pick to trials that pass the quality gates: a group
    where no front member qualifies has no pick. ``tolerance``, ``low`` and ``high`` (the first objective's
    interval per point) are ``pick_index``'s.
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    n = len(values)
    directions = [o.direction for o in objectives]
    finite = np.isfinite(values)
    complete = finite.all(axis=1)
    missing = {o.metric: int((~finite[:, i]).sum()) for i, o in enumerate(objectives) if (~finite[:, i]).any()}
    keys = list(groups) if groups is not None else [None] * n
    candidates = np.ones(n, dtype=bool) if pick_candidates is None else np.asarray(pick_candidates, dtype=bool)

    rank = np.zeros(n, dtype=int)
    tie = np.zeros(n, dtype=bool)
    pick = np.zeros(n, dtype=bool)
    for key in dict.fromkeys(keys):
        members = np.array([i for i in range(n) if keys[i] == key and complete[i]], dtype=int)
        if len(members) == 0:
            continue
        group_ranks = nondominated_ranks(values[members], directions)
        rank[members] = group_ranks
        tie[members] = tied(values[members])  # identical points always share a rank
        front = members[group_ranks == 1]
        chosen = pick_index(values[front], directions, candidates[front], tolerance,
                            None if low is None else np.asarray(low, dtype=float)[front],
                            None if high is None else np.asarray(high, dtype=float)[front])
        if chosen is not None:
            pick[front[chosen]] = True
    return Fronts(rank=rank, tie=tie, pick=pick, missing=missing)
