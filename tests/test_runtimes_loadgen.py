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


def test_a_left_over_sample_waits_from_its_own_arrival() -> None:
    ran: list[tuple[list[str], float]] = []
    done = threading.Event()

    def run(batch: list[str]) -> None:
        ran.append((batch, time.perf_counter()))
        if len(ran) == 2:
            done.set()

    batcher = Batcher(run, max_batch=2, max_wait_s=1.0)  # margins of 0.8 s: a loaded machine cannot flip it
    batcher.add(["a"])
    time.sleep(0.2)
    arrived = time.perf_counter()  # c arrives after this
    batcher.add(["b", "c"])  # a and b go at once; c arrived 0.2 s after a and must wait its own 1.0 s
    assert done.wait(5)
    batcher.stop()
    assert [b for b, _ in ran] == [["a", "b"], ["c"]]
    assert ran[1][1] - arrived >= 0.99  # waiting from a's arrival would have sent it at about 0.8


class FakeLoadGen:
    """Just enough of mlperf_loadgen for a Responder: responses and the completions it is told."""

    class QuerySampleResponse:
        id = 0

    def __init__(self) -> None:
        self.completed: list[int] = []

    def QuerySamplesComplete(self, responses: list[QuerySampleResponse]) -> None:
        self.completed += [r.id for r in responses]


def test_responder_answers_every_sample_even_when_serving_fails() -> None:
    from costbench.runtimes.loadgen import Responder

    lg, served = FakeLoadGen(), []

    def serve_rows(indices: list[int]) -> None:
        served.append(indices)
        raise RuntimeError("model broke")

    answer = Responder(lg, serve_rows, max_batch=4, deadline=time.perf_counter() + 60)
    answer([(101, 1), (102, 2)])
    answer([(103, 3)])  # after an error the rest are answered unserved
    assert lg.completed == [101, 102, 103] and served == [[1, 2]]
    assert str(answer.error) == "model broke" and not answer.overran


def test_responder_past_its_deadline_answers_unserved_and_says_so() -> None:
    from costbench.runtimes.loadgen import Responder

    lg, served = FakeLoadGen(), []
    answer = Responder(lg, served.append, max_batch=4, deadline=time.perf_counter() - 1)
    answer([(7, 0), (8, 1)])
    assert lg.completed == [7, 8] and served == [] and answer.overran and answer.error is None


def test_a_server_run_over_its_time_bound_stops_and_is_invalid() -> None:
    import mlperf_loadgen as lg

    from costbench.runtimes.loadgen import one_run
    from costbench.spec import ServeConfig

    def slow(indices: list[int]) -> None:
        time.sleep(0.2)  # 64 rows per 0.2 s: far below the 5,000 QPS asked for

    cfg = ServeConfig(scenario="server", slo_ms=20, max_batch=64, max_wait_ms=1, scenario_seconds=0.25)
    run = one_run(lg, slow, 100, "server", cfg, qps=5000.0, out_dir=None)
    assert run["valid"] is False and run["verdict"] == "INVALID" and run["p99_ms"] is None
    assert run["invalid_because"][-1].startswith("costbench: still serving at the run's time bound (1 s)")
    assert run["wall_s"] < 2.5  # serving all 1,250 queries at 64 per 0.2 s would take about 4 s


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
    # bounded: three calibration runs of at most 1 s, three of at most 4 x 0.5 s, plus LoadGen's start-up
    assert 0 < scenario["seconds"] < 3 * 1 + 3 * 2 + 3
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


def test_offline_on_a_model_faster_than_its_calibration_lasts_its_min_duration_and_is_valid() -> None:
    from types import SimpleNamespace

    from costbench.runtimes.loadgen import run_scenario
    from costbench.spec import ServeConfig

    warm = time.perf_counter() + 0.6

    def predict(index: object) -> None:  # slow while warming up (the calibration), then 20x faster
        time.sleep(0.002 if time.perf_counter() < warm else 0.0001)

    found = run_scenario(predict, lambda _split, index: (index,), SimpleNamespace(label=list(range(512))),
                         ServeConfig(scenario="offline", scenario_seconds=0.25, max_batch=64))
    assert found["runs"][-1]["valid"], found["runs"][-1]["invalid_because"]
    assert found["seconds"] < 3 * 1 + 2 * 1 + 2
