"""Non-dominated sorting against a brute-force definition, plus ties, NaN, groups and the pick."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costbench.pareto import Objective, compute_fronts, nondominated_ranks, pick_index, tied


def brute_force_ranks(points: list[tuple[float, ...]], directions: list[str]) -> list[int]:
    """Rank by the textbook definition, peeling one front at a time with plain loops."""

    def better_or_equal(a: float, b: float, d: str) -> bool:
        return a >= b if d == "max" else a <= b

    def dominates(p: tuple[float, ...], q: tuple[float, ...]) -> bool:
        return all(better_or_equal(a, b, d) for a, b, d in zip(p, q, directions, strict=True)) and p != q

    ranks = [0] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        rank += 1
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
    return ranks


point_sets = st.integers(1, 3).flatmap(
    lambda k: st.tuples(
        st.lists(st.tuples(*[st.integers(0, 4)] * k), min_size=1, max_size=14),
        st.lists(st.sampled_from(["max", "min"]), min_size=k, max_size=k),
    )
)


@settings(max_examples=150, deadline=None)
@given(point_sets)
def test_ranks_match_brute_force(case: tuple[list[tuple[int, ...]], list[str]]) -> None:
    points, directions = case
    values = np.array(points, dtype=float)
    assert nondominated_ranks(values, directions).tolist() == brute_force_ranks(points, directions)
    duplicates = [points.count(p) > 1 for p in points]
    assert tied(values).tolist() == duplicates


def test_mixed_directions_hand_case() -> None:
    # auc:max, cost:min. (0.9, 5) and (0.8, 1) trade off; (0.8, 5) is beaten by both; (0.7, 6) by all.
    values = np.array([[0.9, 5.0], [0.8, 1.0], [0.8, 5.0], [0.7, 6.0]])
    assert nondominated_ranks(values, ["max", "min"]).tolist() == [1, 1, 2, 3]
    # flipping the directions flips the order
    assert nondominated_ranks(values, ["min", "max"]).tolist() == [3, 3, 2, 1]


def test_equal_points_share_the_front_and_are_ties() -> None:
    values = np.array([[0.9, 1.0], [0.9, 1.0], [0.8, 2.0]])
    fronts = compute_fronts(values, [Objective("auc", "max"), Objective("cost", "min")])
    assert fronts.rank.tolist() == [1, 1, 2]
    assert fronts.tie.tolist() == [True, True, False]
    assert fronts.pick.tolist() == [True, False, False]  # first of the tied pair


def test_missing_objectives_are_left_out_and_counted() -> None:
    values = np.array([[0.9, np.nan], [np.nan, np.nan], [0.8, 2.0], [0.7, 3.0]])
    fronts = compute_fronts(values, [Objective("auc", "max"), Objective("p99_ms", "min")])
    assert fronts.rank.tolist() == [0, 0, 1, 2]
    assert fronts.missing == {"auc": 1, "p99_ms": 2}
    assert fronts.pick.tolist() == [False, False, True, False]


def test_nondominated_ranks_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        nondominated_ranks(np.array([[np.nan]]), ["max"])


def test_one_front_per_group() -> None:
    # group b's best point is worse than all of group a's, yet it is on b's front
    values = np.array([[0.9, 1.0], [0.8, 2.0], [0.5, 9.0], [0.4, 9.5]])
    fronts = compute_fronts(values, [Objective("auc", "max"), Objective("cost", "min")],
                            groups=["a", "a", "b", "b"])
    assert fronts.rank.tolist() == [1, 2, 1, 2]
    assert fronts.pick.tolist() == [True, False, True, False]
    together = compute_fronts(values, [Objective("auc", "max"), Objective("cost", "min")])
    assert together.rank.tolist() == [1, 2, 3, 4]


def test_pick_practical_equivalence_then_cost_priority() -> None:
    """Issue 15 case 5: +0.001 AUC must not outweigh an 18x latency difference."""
    # auc, p99_ms: bf16 0.8778 at 4.57 ms, int8 0.8768 at 0.26 ms, a far worse trial at 0.1 ms
    front = np.array([[0.8778, 4.57], [0.8768, 0.26], [0.80, 0.10]])
    assert pick_index(front, ["max", "min"], tolerance=0.001) == 1  # a tie on AUC; p99 decides
    assert pick_index(front, ["max", "min"], tolerance=0.0) == 0  # no tolerance: the most accurate
    # intervals that overlap the best's make a tie even beyond the tolerance
    low, high = np.array([0.870, 0.860, 0.79]), np.array([0.885, 0.875, 0.81])
    front = np.array([[0.8778, 4.57], [0.8668, 0.26], [0.80, 0.10]])
    assert pick_index(front, ["max", "min"], tolerance=0.001, low=low, high=high) == 1
    assert pick_index(front, ["max", "min"], tolerance=0.001) == 0
    # the next objectives decide in the order stated: cost first, then p99
    front = np.array([[0.90, 1.0, 9.0], [0.90, 2.0, 1.0], [0.90, 1.0, 5.0]])
    assert pick_index(front, ["max", "min", "min"]) == 2
    # a min-direction first objective works the same way
    assert pick_index(np.array([[1.0, 5.0], [1.0005, 1.0]]), ["min", "min"], tolerance=0.001) == 1


def test_pick_respects_candidates_and_never_picks_outside_them() -> None:
    front = np.array([[0.90, 100.0], [0.88, 10.0], [0.80, 1.0]])
    assert pick_index(front, ["max", "min"], np.array([False, False, True])) == 2
    assert pick_index(front, ["max", "min"], np.array([True, False, True])) == 0
    assert pick_index(front, ["max", "min"], np.array([False, False, False])) is None
    fronts = compute_fronts(front, [Objective("auc", "max"), Objective("cost", "min")],
                            pick_candidates=np.array([False, False, False]))
    assert not fronts.pick.any()


def test_objective_direction_is_checked() -> None:
    with pytest.raises(ValueError, match="direction"):
        Objective("auc", "up")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(0, 3), st.none()), st.integers(0, 3), st.sampled_from("ab")),
                min_size=1, max_size=16))
def test_groups_and_missing_match_brute_force(items: list[tuple[int | None, int, str]]) -> None:
    values = np.array([[np.nan if a is None else a, b] for a, b, _ in items], dtype=float)
    groups = [g for _, _, g in items]
    fronts = compute_fronts(values, [Objective("auc", "max"), Objective("cost", "min")], groups=groups)
    for group in "ab":
        members = [i for i, (a, _, g) in enumerate(items) if g == group and a is not None]
        expected = brute_force_ranks([(float(items[i][0]), float(items[i][1])) for i in members], ["max", "min"])
        assert [int(fronts.rank[i]) for i in members] == expected
        picks = [i for i in members if fronts.pick[i]]
        assert len(picks) == (1 if members else 0)
        assert all(fronts.rank[i] == 1 for i in picks)
    assert [int(r) for r, (a, _, _) in zip(fronts.rank, items, strict=True) if a is None] == \
        [0] * sum(a is None for a, _, _ in items)
    assert fronts.missing == ({"auc": sum(a is None for a, _, _ in items)} if any(a is None for a, _, _ in items)
                              else {})
