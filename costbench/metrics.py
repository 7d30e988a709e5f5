"""Quality metrics for a binary purchase label, in plain numpy so they run anywhere and are easy to audit.

Every ranking metric treats tied scores exactly (no arbitrary tie-breaking): a model that gives many rows
the same score (an int8 model, a saturated sigmoid) is scored as if the ties were broken at random, in
expectation.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-15  # probability clip for log loss, so a saturated 0 or 1 costs a large but finite amount


def _as_arrays(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if y.size == 0:
        raise ValueError("no rows to score")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def _both_classes(y: np.ndarray) -> tuple[float, float]:
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both buyers and non-buyers in the split; this one has only one class")
    return n_pos, n_neg


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    return mean_rank[inverse]


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula: the chance a buyer outscores a non-buyer, ties half."""
    y, s = _as_arrays(y_true, scores)
    n_pos, n_neg = _both_classes(y)
    rank_sum = float(average_ranks(s)[y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _threshold_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One point per distinct score, best first: (threshold, rows called buyers, true positives) for the
    rule 'score >= threshold', so tied scores always fall on the same side."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]  # the last row of each tie group
    return s_sorted[last], last + 1.0, np.cumsum(y_sorted)[last]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve: the step sum over distinct thresholds (as sklearn)."""
    y, s = _as_arrays(y_true, scores)
    n_pos, _ = _both_classes(y)
    _, predicted, tp = _threshold_curve(y, s)
    precision = tp / predicted
    recall = tp / n_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def logloss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean binary cross-entropy of predicted probabilities (clipped to [1e-15, 1 - 1e-15])."""
    y, p = _as_arrays(y_true, proba)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean squared error of predicted probabilities."""
    y, p = _as_arrays(y_true, proba)
    return float(np.mean((p - y) ** 2))


def threshold_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall and F1 when rows scored >= ``threshold`` are called buyers.

    Precision is 0 when nothing is called a buyer, and F1 is 0 when precision + recall is 0.
    """
    y, p = _as_arrays(y_true, proba)
    called = p >= threshold
    tp = float(np.sum(called & (y == 1)))
    fp = float(np.sum(called & (y == 0)))
    fn = float(np.sum(~called & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float(np.mean(called == (y == 1)))
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def f1_optimal_threshold(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The score threshold (one of the scores) whose ``>=`` rule gives the highest F1; the highest such
    threshold on a tie in F1."""
    y, p = _as_arrays(y_true, proba)
    n_pos, _ = _both_classes(y)
    thresholds, predicted, tp = _threshold_curve(y, p)
    f1 = 2 * tp / (predicted + n_pos)  # 2TP / (predicted + actual positives)
    return float(thresholds[int(np.argmax(f1))])


def capture_at_top(y_true: np.ndarray, scores: np.ndarray, fraction: float) -> float:
    """Share of all buyers among the ``fraction`` highest-scored rows.

    The cut is at exactly ``fraction * n`` rows; a group of tied scores that straddles it counts in
    proportion to how much of it lies inside (the expectation under random tie-breaking).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y, s = _as_arrays(y_true, scores)
    n_pos, _ = _both_classes(y)
    k = fraction * s.size
    values, inverse, counts = np.unique(-s, return_inverse=True, return_counts=True)  # best score first
    positives = np.bincount(inverse, weights=y, minlength=values.size)
    above = np.cumsum(counts) - counts  # rows scored strictly higher than each group
    inside = np.clip((k - above) / counts, 0.0, 1.0)
    return float(np.sum(positives * inside) / n_pos)


def lift_at_top(y_true: np.ndarray, scores: np.ndarray, fraction: float) -> float:
    """How many times more buyers the top ``fraction`` holds than a random pick of the same size."""
    return capture_at_top(y_true, scores, fraction) / fraction


BOOTSTRAP_REPLICATES = 200


def bootstrap_intervals(y_true: np.ndarray, scores: np.ndarray, fraction: float,
                        replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> dict[str, float]:
    """95% percentile-bootstrap intervals of the AUC and of capture_at_top over the rows of one split.

    A Poisson(1) bootstrap (each row's weight is drawn, which for large n is the classic resampling with
    replacement): the scores are grouped once by distinct value, so a replicate costs O(n), ties stay
    exact, and the same inputs and seed give the same interval.
    """
    y, s = _as_arrays(y_true, scores)
    _both_classes(y)
    values, inverse = np.unique(s, return_inverse=True)  # ascending score groups
    rng = np.random.default_rng(seed)
    aucs, captures = np.empty(replicates), np.empty(replicates)
    for b in range(replicates):
        w = rng.poisson(1.0, size=y.size).astype(np.float64)
        pos = np.bincount(inverse, weights=w * y, minlength=values.size)
        neg = np.bincount(inverse, weights=w * (1 - y), minlength=values.size)
        total_pos, total_neg = pos.sum(), neg.sum()
        below = np.cumsum(neg) - neg
        aucs[b] = (pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg) if total_pos and total_neg else np.nan
        # capture: groups from the best score down, the straddling group in proportion
        pos_desc, all_desc = pos[::-1], (pos + neg)[::-1]
        k = fraction * all_desc.sum()
        before = np.cumsum(all_desc) - all_desc
        inside = np.clip((k - before) / np.where(all_desc > 0, all_desc, 1), 0, 1)
        captures[b] = (pos_desc * inside).sum() / total_pos if total_pos else np.nan
    auc_lo, auc_hi = np.nanpercentile(aucs, [2.5, 97.5])
    cap_lo, cap_hi = np.nanpercentile(captures, [2.5, 97.5])
    return {"auc_ci_low": float(auc_lo), "auc_ci_high": float(auc_hi),
            "capture_at_top_ci_low": float(cap_lo), "capture_at_top_ci_high": float(cap_hi)}
