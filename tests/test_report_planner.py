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


def server(qps: float | None, slo_ms: float, runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """details.scenario of a server run as runtimes.loadgen records it."""
    runs = runs or [{"target_qps": qps, "verdict": "VALID", "valid": True, "p99_ms": 7.0, "invalid_because": []}]
    return {"scenario": {"scenario": "server", "slo_ms": slo_ms, "max_batch": 64, "runs": runs,
                         "max_qps_at_slo": qps, "verdict": "VALID" if qps else "no run met the SLO"}}


def test_plan_from_the_server_scenario_at_the_slo() -> None:
    # 2500 rows/s at 1000 QPS per device (LoadGen, p99 7 ms <= 20 ms): ceil(2500 / 1000) = 3 devices, no
    # headroom (queueing is in the figure); 4 threads x $0.05 = $0.20/h; 3 x 0.20 x 730 = $438/month;
    # a million predictions at 1000/s on one device: 0.20 x 1e6 / 3.6e6 = $0.0556.
    metrics = {"max_qps_at_slo": 1000.0, "p99_at_slo_ms": 7.0, "p99_ms@64": 3.0, "throughput@64": 9000.0}
    (plan,) = plan_serving([row(metrics, details=server(1000.0, 20.0))], rate=2500.0, slo_ms=20.0)
    assert plan.devices == 3 and plan.basis == "server scenario (p99 <= 20 ms)"
    assert (plan.throughput, plan.p99_ms, plan.batch_size) == (1000.0, 7.0, None)
    assert plan.usd_per_million == pytest.approx(0.20 / 3.6)
    assert plan.serving_usd_month == pytest.approx(438.0) and plan.total_usd_month == pytest.approx(438.0)


def test_a_stricter_scenario_slo_is_used_and_said() -> None:
    (plan,) = plan_serving([row({"max_qps_at_slo": 1000.0}, details=server(1000.0, 10.0))], rate=2500.0, slo_ms=20.0)
    assert plan.devices == 3 and plan.basis == "server scenario (p99 <= 10 ms, stricter than the plan's 20 ms)"


def test_a_looser_scenario_slo_falls_back_to_fixed_batch_latency() -> None:
    # scenario at 60 ms does not answer a 20 ms plan: batch 64 (p99 3 ms, 1000 rows/s): ceil(2500 x 1.3 / 1000) = 4
    metrics = {"max_qps_at_slo": 5000.0, "p99_ms@64": 3.0, "throughput@64": 1000.0}
    (plan,) = plan_serving([row(metrics, details=server(5000.0, 60.0))], rate=2500.0, slo_ms=20.0)
    assert (plan.devices, plan.basis, plan.batch_size) == (4, "batch 64 latency", 64)
    assert plan.usd_per_million == pytest.approx(0.20 / 3.6)
    assert plan.note == "server scenario measured at p99 <= 60 ms, looser than 20 ms: planned from fixed-batch latency"


def test_a_scenario_without_a_valid_run_says_why_and_falls_back() -> None:
    runs = [{"target_qps": q, "verdict": "INVALID", "valid": False, "p99_ms": 80.0,
             "invalid_because": ["Performance constraints satisfied: NO", "Early stopping satisfied: NO"]}
            for q in (800.0, 400.0)]
    r = row({"max_qps_at_slo": None, "p99_ms@64": 3.0, "throughput@64": 1000.0}, details=server(None, 20.0, runs))
    (plan,) = plan_serving([r], rate=100.0, slo_ms=20.0)
    assert plan.basis == "batch 64 latency" and plan.devices == 1
    why = ("server scenario: no run was VALID with p99 <= 20 ms; the lowest try, 400 QPS, was INVALID with p99 80 ms "
           "(Performance constraints satisfied: NO; Early stopping satisfied: NO)")
    assert plan.note == f"{why}: planned from fixed-batch latency"
    from costbench.report.scenario import invalid_notes

    assert invalid_notes([r, row({})]) == [f"trial a: LoadGen {why}"]


def test_an_invalid_offline_run_is_reported_with_loadgens_reasons() -> None:
    from costbench.report.scenario import not_valid_reason

    run = {"verdict": "INVALID", "valid": False, "invalid_because": ["Min duration satisfied: NO"]}
    details = {"scenario": {"scenario": "offline", "runs": [run]}}
    assert not_valid_reason(row({}, details=details)) == \
        "offline scenario: LoadGen's verdict INVALID (Min duration satisfied: NO)"
    assert not_valid_reason(row({}, details={"scenario": {"scenario": "offline", "runs": [{"valid": True}]}})) is None
