"""serve.scenario: LoadGen's summary read back, the server's dynamic batcher, and a real server run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("mlperf_loadgen", reason='pip install "costbench[serve]"')

from costbench.runtimes.batcher import Batcher
from costbench.runtimes.loadgen import parse_summary

SUMMARY = """\
MLPerf Results Summary
Scenario : Server
Mode     : PerformanceOnly
Completed samples per second    : 177.02
Result is : INVALID
  Performance constraints satisfied : NO
  Min duration satisfied : Yes
  Early stopping satisfied: NO
99.00 percentile latency (ns)   : 15997436
90.00 percentile latency (ns)   : 10911807
"""


def test_summary_gives_the_verdict_the_reasons_and_the_percentiles() -> None:
    got = parse_summary(SUMMARY)
    assert got["verdict"] == "INVALID" and got["valid"] is False
    assert got["invalid_because"] == ["Performance constraints satisfied: NO", "Early stopping satisfied: NO"]
    assert got["samples_per_s"] == 177.02
    assert got["p99_ms"] == pytest.approx(15.997436) and got["p90_ms"] == pytest.approx(10.911807)


def test_batcher_never_exceeds_max_batch_and_flushes_after_the_wait() -> None:
    seen: list[int] = []
    done = threading.Event()

    def run(batch: list[int]) -> None:
        seen.append(len(batch))
        if sum(seen) == 10:
            done.set()

    batcher = Batcher(run, max_batch=4, max_wait_s=0.05)
    start = time.perf_counter()
    batcher.add(list(range(9)))  # two full batches at once, then one sample that must wait
    batcher.add([9])
    assert done.wait(2)
    waited = time.perf_counter() - start
    batcher.stop()
    assert seen == [4, 4, 2] and waited >= 0.04


@pytest.mark.slow
def test_server_scenario_reports_max_qps_at_the_slo_with_loadgens_verdict(tmp_path: Path) -> None:
    from costbench.record import is_known_metric
    from tests.test_trial import trial_for

    record = __import__("costbench.trial", fromlist=["run_trial"]).run_trial(trial_for(
        tmp_path, "model.size=xs", "serve.scenario=server", "serve.scenario_seconds=0.5", "serve.search_steps=3",
        "serve.slo_ms=50", "serve.max_batch=32"))
    assert record["status"] == "ok", record["reason"]
    metrics, scenario = record["metrics"], record["details"]["scenario"]
    assert all(is_known_metric(n) for n in ("max_qps_at_slo", "p99_at_slo_ms", "serve_cost_per_million_at_slo_usd"))
    assert len(scenario["runs"]) == 3 and all(r["verdict"] in ("VALID", "INVALID") for r in scenario["runs"])
    if metrics["max_qps_at_slo"] is None:
        assert scenario["verdict"] == "no run met the SLO with a VALID result"
    else:
        assert scenario["verdict"] == "VALID" and 0 < metrics["p99_at_slo_ms"] <= 50
        best = max((r for r in scenario["runs"] if r["valid"] and r["p99_ms"] <= 50), key=lambda r: r["target_qps"])
        assert metrics["max_qps_at_slo"] == best["target_qps"]
        assert metrics["serve_cost_per_million_at_slo_usd"] == pytest.approx(0.05 / 3600 * 1e6 / best["target_qps"])


def test_qps_search_halves_to_a_pass_then_bisects_below_the_first_failure() -> None:
    from costbench.runtimes.loadgen import bisect_qps

    runs, best = bisect_qps(1000.0, 6, lambda qps: (qps <= 300, {"p99_ms": qps / 100}))
    assert [r["target_qps"] for r in runs] == [800, 400, 200, 300, 350, 325]
    assert best == {"p99_ms": 3.0, "target_qps": 300}
    assert bisect_qps(1000.0, 2, lambda qps: (False, {}))[1] is None
