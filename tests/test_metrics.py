"""Metrics against independent, deliberately naive reference computations, on scores full of ties."""

from __future__ import annotations

import numpy as np
import pytest

from costbench import metrics


def _cases(n_cases: int = 25):
    """Random labels and coarse scores (few distinct values, so ties are everywhere)."""
    rng = np.random.default_rng(0)
    for _ in range(n_cases):
        n = int(rng.integers(8, 120))
        y = (rng.random(n) < rng.uniform(0.1, 0.6)).astype(float)
        y[:2] = [0.0, 1.0]  # both classes always present
        scores = np.round(rng.random(n) * rng.integers(2, 12)) / 12.0
        yield y, scores


def _pairwise_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(float(p > q) + 0.5 * float(p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def _step_ap(y, s):
    """Average precision as the textbook step sum, one threshold at a time."""
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s), reverse=True):
        called = s >= t
        tp = float(np.sum(called & (y == 1)))
        precision, recall = tp / called.sum(), tp / y.sum()
        total += (recall - prev_recall) * precision
        prev_recall = recall
    return total


def _naive_counts(y, s, t):
    tp = fp = fn = tn = 0
    for label, score in zip(y, s, strict=True):
        if score >= t:
            tp, fp = tp + (label == 1), fp + (label == 0)
        else:
            fn, tn = fn + (label == 1), tn + (label == 0)
    return tp, fp, fn, tn


def _naive_f1(y, s, t):
    tp, fp, fn, _ = _naive_counts(y, s, t)
    return 2 * tp / (2 * tp + fp + fn)


def _capture_by_pairs(y, s, fraction):
    """Each row belongs to the top in proportion to how much of its tie group fits above the cut."""
    k = fraction * len(s)
    share = 0.0
    for label, score in zip(y, s, strict=True):
        higher, equal = np.sum(s > score), np.sum(s == score)
        share += label * min(1.0, max(0.0, (k - higher) / equal))
    return share / y.sum()


def test_auc_matches_pairwise_count():
    for y, s in _cases():
        assert metrics.roc_auc(y, s) == pytest.approx(_pairwise_auc(y, s), abs=1e-12)


def test_auc_of_known_rankings():
    y = np.array([0, 0, 1, 1])
    assert metrics.roc_auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert metrics.roc_auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert metrics.roc_auc(y, np.full(4, 0.5)) == 0.5


def test_average_precision_matches_step_sum():
    for y, s in _cases():
        assert metrics.average_precision(y, s) == pytest.approx(_step_ap(y, s), abs=1e-12)


def test_threshold_metrics_match_counting():
    for y, s in _cases():
        t = float(np.median(s))
        tp, fp, fn, tn = _naive_counts(y, s, t)
        got = metrics.threshold_metrics(y, s, t)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        assert got["accuracy"] == pytest.approx((tp + tn) / len(y))
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_nothing_called_a_buyer_gives_zero_precision_and_f1():
    got = metrics.threshold_metrics(np.array([0, 1]), np.array([0.1, 0.2]), 0.9)
    assert got == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_f1_optimal_threshold_beats_every_candidate():
    for y, s in _cases():
        chosen = metrics.f1_optimal_threshold(y, s)
        best = max(_naive_f1(y, s, t) for t in set(s))
        assert chosen in set(s)
        assert _naive_f1(y, s, chosen) == pytest.approx(best)
        assert metrics.threshold_metrics(y, s, chosen)["f1"] == pytest.approx(best)


def test_capture_and_lift_match_per_row_shares():
    for y, s in _cases():
        for fraction in (0.1, 0.2, 0.37, 1.0):
            expected = _capture_by_pairs(y, s, fraction)
            assert metrics.capture_at_top(y, s, fraction) == pytest.approx(expected, abs=1e-12)
            assert metrics.lift_at_top(y, s, fraction) == pytest.approx(expected / fraction, abs=1e-12)


def test_capture_without_ties_counts_the_top_rows():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    s = np.linspace(1.0, 0.1, 10)  # row 0 best
    assert metrics.capture_at_top(y, s, 0.3) == pytest.approx(2 / 3)


def test_logloss_and_brier_match_definitions():
    rng = np.random.default_rng(1)
    y = (rng.random(50) < 0.3).astype(float)
    p = rng.random(50)
    expected = -np.mean([np.log(q) if label else np.log(1 - q) for label, q in zip(y, p, strict=True)])
    assert metrics.logloss(y, p) == pytest.approx(expected)
    assert metrics.brier(y, p) == pytest.approx(np.mean((p - y) ** 2))
    assert np.isfinite(metrics.logloss(np.array([1.0, 0.0]), np.array([0.0, 1.0])))


def test_single_class_and_nan_are_refused():
    with pytest.raises(ValueError, match="both"):
        metrics.roc_auc(np.zeros(5), np.arange(5.0))
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc(np.array([0, 1]), np.array([0.1, np.nan]))


def test_bootstrap_interval_holds_the_auc_and_narrows_with_rows():
    rng = np.random.default_rng(0)
    widths = []
    for n in (500, 8000):
        y = rng.random(n) < 0.2
        s = y * 1.0 + rng.normal(size=n)
        ci = metrics.bootstrap_intervals(y, s, 0.2)
        assert ci["auc_ci_low"] < metrics.roc_auc(y, s) < ci["auc_ci_high"]
        assert ci["capture_at_top_ci_low"] < metrics.capture_at_top(y, s, 0.2) < ci["capture_at_top_ci_high"]
        widths.append(ci["auc_ci_high"] - ci["auc_ci_low"])
        assert metrics.bootstrap_intervals(y, s, 0.2) == ci  # the same rows give the same interval
    assert widths[1] < widths[0] / 2.5  # about 1/sqrt(16) as wide with 16x the rows
