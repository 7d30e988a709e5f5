"""Percentile and conservative-p99 arithmetic against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from costbench.measure.stats import (
    binomial_cdf,
    early_stopping_discards,
    early_stopping_percentile,
    min_samples_for,
    percentiles,
)
from costbench.spec import MIN_CALLS_FOR_P99, ServeConfig


def test_percentiles_interpolate_linearly_between_order_statistics():
    # position (n-1)q: for [1,2,3,4], p50 at 1.5 -> 2.5; p90 at 2.7 -> 3 + 0.7 * (4 - 3) = 3.7
    assert percentiles([4, 1, 3, 2], (50, 90)) == pytest.approx([2.5, 3.7])
    # 1..101: p99 sits exactly on index 99 -> 100
    assert percentiles(list(range(1, 102)), (99,)) == pytest.approx([100.0])


def test_percentiles_refuse_no_samples():
    with pytest.raises(ValueError):
        percentiles([], (50,))


def test_binomial_cdf_matches_the_closed_form():
    # P(X <= 1) for n = 662, p = 0.01: 0.99^662 + 662 * 0.01 * 0.99^661
    by_hand = 0.99**662 + 662 * 0.01 * 0.99**661
    assert binomial_cdf(1, 662, 0.01) == pytest.approx(by_hand, rel=1e-12)
    # P(X <= 2) for n = 1000 from the three terms
    terms = [math.comb(1000, k) * 0.01**k * 0.99 ** (1000 - k) for k in range(3)]
    assert binomial_cdf(2, 1000, 0.01) == pytest.approx(sum(terms), rel=1e-12)
    assert binomial_cdf(-1, 10, 0.5) == 0.0
    assert binomial_cdf(10, 10, 0.5) == 1.0


def test_discards_follow_loadgen_for_p99():
    # n = 661: even t = 1 fails (P(X <= 1) = 0.0102 > 0.01) -> no estimate
    assert early_stopping_discards(661) is None
    # n = 662: t = 1 passes (0.0099), t = 2 does not -> the maximum
    assert early_stopping_discards(662) == 1
    # n = 1000: P(X <= 2) = 0.0027 passes, P(X <= 3) = 0.0101 fails -> t = 2, the second-largest
    assert early_stopping_discards(1000) == 2


def test_min_samples_match_spec_floor_and_loadgen_p90():
    assert min_samples_for(0.99) == MIN_CALLS_FOR_P99 == 662
    # p90: n = 64 gives 0.9^63 * (0.9 + 6.4) = 0.0096 <= 0.01; n = 63 gives 0.9^62 * 7.2 = 0.0105
    assert min_samples_for(0.90) == 64


def test_conservative_p99_is_the_t_th_largest_sample():
    rng = np.random.default_rng(0)
    samples = rng.permutation(np.arange(1000, dtype=float))
    assert early_stopping_percentile(samples) == 998.0  # second-largest of 0..999
    assert early_stopping_percentile(samples[:662]) == samples[:662].max()
    assert early_stopping_percentile(samples[:661]) is None


def test_conservative_p99_is_never_below_the_plain_p99():
    rng = np.random.default_rng(1)
    for n in (662, 1000, 5000, 20000):
        samples = rng.lognormal(size=n)
        assert early_stopping_percentile(samples) >= percentiles(samples, (99,))[0]


def test_serve_config_refuses_too_few_calls_for_p99():
    with pytest.raises(ValidationError, match="662"):
        ServeConfig(min_calls=661)
    assert ServeConfig(min_calls=662).min_calls == 662
