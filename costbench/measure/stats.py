"""Latency statistics: plain percentiles, and the conservative p99 MLPerf LoadGen's early stopping reports.

A p99 read off n samples is itself a noisy estimate. LoadGen's early-stopping rule asks instead: which
order statistic is, with 99% confidence, at or above the true percentile? With n calls and ``t``
discarded largest values, the estimate is the t-th largest call; ``t`` is the largest count for which
seeing at most ``t`` calls over the true p-th percentile would happen with probability <= 1 - confidence,
i.e. ``P(Binomial(n, 1 - p) <= t) <= 1 - confidence``. For p = 0.99 at 99% confidence that needs
n >= 662 (then t = 1, the maximum); for n = 1,000, t = 2 (the second-largest value).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

# Hyndman & Fan type 7 (numpy's default, and pandas' and torch.quantile's): linear interpolation
# between the two order statistics around (n - 1) * q. Written down so readers can reproduce it.
PERCENTILE_METHOD = "linear"
EARLY_STOPPING_CONFIDENCE = 0.99


def percentiles(samples: Sequence[float] | np.ndarray, qs: Sequence[float]) -> list[float]:
    """Percentiles (qs in 0..100) of the samples by ``PERCENTILE_METHOD``."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("percentiles of no samples")
    return [float(v) for v in np.percentile(values, list(qs), method=PERCENTILE_METHOD)]


def _binomial_log_cdfs(n: int, p: float) -> Iterator[float]:
    """log P(Binomial(n, p) <= k) for k = 0, 1, ..., n, accumulated in log space (exact for large n)."""
    log_p, log_q, log_n_fact = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    log_cdf = -math.inf
    for k in range(n + 1):
        log_pmf = log_n_fact - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
        log_cdf = np.logaddexp(log_cdf, log_pmf)
        yield float(log_cdf)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.exp(next(itertools.islice(_binomial_log_cdfs(n, p), k, None)))


def early_stopping_discards(n: int, percentile: float = 0.99,
                            confidence: float = EARLY_STOPPING_CONFIDENCE) -> int | None:
    """The ``t`` of LoadGen's rule: the estimate is the t-th largest of n samples; None if n is too few.

    ``t`` is the largest count with ``P(Binomial(n, 1 - percentile) <= t) <= 1 - confidence``; the
    cdf grows with ``t``, so walking it up from 0 until it passes 1 - confidence finds it in O(t).
    """
    if not (0 < percentile < 1 and 0 < confidence < 1):
        raise ValueError(f"percentile and confidence must lie in (0, 1), got {percentile}, {confidence}")
    log_alpha = math.log(1 - confidence)
    t = -1
    for k, log_cdf in enumerate(_binomial_log_cdfs(n, 1 - percentile)):
        if log_cdf > log_alpha:
            break
        t = k
    return t if t >= 1 else None


def min_samples_for(percentile: float = 0.99, confidence: float = EARLY_STOPPING_CONFIDENCE) -> int:
    """The fewest samples for which the early-stopping estimate exists (662 for p99 at 99%)."""
    n = math.ceil(math.log(1 - confidence) / math.log(percentile))  # t = 0 bound: all n under
    while early_stopping_discards(n, percentile, confidence) is None:
        n += 1
    return n


def early_stopping_percentile(samples: Sequence[float] | np.ndarray, percentile: float = 0.99,
                              confidence: float = EARLY_STOPPING_CONFIDENCE) -> float | None:
    """LoadGen's conservative estimate of a percentile: the t-th largest sample; None if too few."""
    values = np.sort(np.asarray(samples, dtype=np.float64))
    t = early_stopping_discards(values.size, percentile, confidence)
    return None if t is None else float(values[values.size - t])
