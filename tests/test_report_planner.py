"""The serving cost planner against hand-computed cases."""

from __future__ import annotations

from typing import Any

import pytest

from costbench.errors import UserError
from costbench.report.planner import parse_slo, parse_traffic, plan_serving
from costbench.report.rows import Row
from costbench.spec import PricesConfig

PRICES = PricesConfig().model_dump()  # cpu 0.05 $/core-h, H200 4.5 $/h, unnamed GPU 3.5 $/h


def row(metrics: dict[str, Any], *, details: dict[str, Any] | None = None, device: str = "cpu",
        threads: int | None = 4, name: str = "a") -> Row:
    config = {"device": device, "threads": threads, "prices": PRICES,
              "serve": {"batch_sizes": [1], "batch_size_for_objective": None}}
    return Row(id=name, group=name, n=1, axes={}, config=config, metrics=metrics, std={},
               details=details or {})


@pytest.mark.parametrize(("text", "rows_per_s"), [
    ("86.4M/day", 1000.0), ("2k/s", 2000.0), ("120/min", 2.0), ("3.6K/h", 1.0), ("2.628B/month", 1000.0),
    ("1.5 M / day", 1.5e6 / 86400),
])
def test_parse_traffic(text: str, rows_per_s: float) -> None:
    assert parse_traffic(text) == pytest.approx(rows_per_s)


@pytest.mark.parametrize(("text", "ms"), [("20ms", 20.0), ("0.05s", 50.0), ("500us", 0.5), ("1.5 ms", 1.5)])
def test_parse_slo(text: str, ms: float) -> None:
    assert parse_slo(text) == pytest.approx(ms)


@pytest.mark.parametrize("bad", ["50M", "50M/week", "fast/day", "0/s", "-5/s"])
def test_bad_traffic(bad: str) -> None:
    with pytest.raises(UserError, match="--traffic"):
        parse_traffic(bad)


@pytest.mark.parametrize("bad", ["20", "20 min", "0ms", "soon"])
def test_bad_slo(bad: str) -> None:
    with pytest.raises(UserError, match="--slo-p99"):
        parse_slo(bad)


def test_cpu_plan_by_hand() -> None:
    # 1000 rows/s average. Batch 64 meets 10 ms (p99 3 ms, 1000 rows/s); batch 256 does not (30 ms).
    # devices = ceil(1000 x 1.3 / 1000) = 2; 4 threads x $0.05 = $0.20/h; 2 x 0.20 x 730 = $292/month;
    # 3 retrains x $0.50 = $1.50; total $293.50.
    metrics = {"p99_ms@1": 0.5, "throughput@1": 200.0, "p99_ms@64": 3.0, "throughput@64": 1000.0,
               "p99_ms@256": 30.0, "throughput@256": 9000.0, "train_cost_usd": 0.5}
    (plan,) = plan_serving([row(metrics)], rate=1000.0, slo_ms=10.0, retrains=3)
    assert (plan.batch_size, plan.devices) == (64, 2)
    assert plan.device_hour_usd == pytest.approx(0.20)
    assert plan.serving_usd_month == pytest.approx(292.0)
    assert plan.training_usd_month == pytest.approx(1.5)
    assert plan.total_usd_month == pytest.approx(293.5)


def test_gpu_priced_by_name_and_default() -> None:
    metrics = {"p99_ms@512": 2.0, "throughput@512": 100_000.0}
    h200 = row(metrics, device="cuda", details={"gpu": "NVIDIA H200", "device": "cuda:0"}, name="h200")
    other = row(metrics, device="cuda", details={"gpu": "NVIDIA RTX 4090"}, name="other")
    plans = plan_serving([h200, other], rate=500_000.0, slo_ms=20.0)
    # ceil(500k x 1.3 / 100k) = 7 devices; the H200 at $4.5/h, an unnamed GPU at the default $3.5/h
    assert [(p.row.id, p.devices) for p in plans] == [("other", 7), ("h200", 7)]  # cheapest first
    assert plans[0].serving_usd_month == pytest.approx(7 * 3.5 * 730)
    assert plans[1].serving_usd_month == pytest.approx(7 * 4.5 * 730)
    assert plans[1].total_usd_month == plans[1].serving_usd_month  # no retrains


def test_none_meets_the_slo() -> None:
    (plan,) = plan_serving([row({"p99_ms@1": 25.0, "throughput@1": 40.0})], rate=10.0, slo_ms=20.0)
    assert plan.batch_size is None and plan.total_usd_month is None
    assert plan.note == "no measured batch size meets p99 <= 20 ms (1: 25 ms)"


def test_unpriceable_plans_sort_last() -> None:
    fast = {"p99_ms@1": 1.0, "throughput@1": 1000.0, "train_cost_usd": 0.1}
    no_threads = row(fast, threads=None, name="no-threads")
    no_train_cost = row({"p99_ms@1": 1.0, "throughput@1": 1000.0}, name="no-train-cost")
    priced = row(fast, name="priced")
    plans = plan_serving([no_threads, no_train_cost, priced], rate=10.0, slo_ms=5.0, retrains=1)
    assert plans[0].row.id == "priced"
    notes = {p.row.id: p.note for p in plans}
    assert "thread count not recorded" in notes["no-threads"]
    assert "training cost n/a" in notes["no-train-cost"]


def test_batch_stats_from_details_and_metrics() -> None:
    details = {"latency": {"batch_sizes": {"1": {"p99_ms": 0.4, "throughput": 2500.0, "n": 1000},
                                           "64": {"p99_ms": 2.0, "throughput": 32000.0}},
                           "probe": {"drift": 0.01}}}
    r = row({"p99_ms@64": 2.5}, details=details)
    # the name@batch metric wins over the details for the same batch
    assert r.batch_stats() == {1: {"p99_ms": 0.4, "throughput": 2500.0, "n": 1000.0},
                               64: {"p99_ms": 2.5, "throughput": 32000.0}}
    # only headline metrics: they belong to the objective batch size
    assert row({"p99_ms": 0.7, "throughput": 1400.0}).batch_stats() == {1: {"p99_ms": 0.7, "throughput": 1400.0}}
