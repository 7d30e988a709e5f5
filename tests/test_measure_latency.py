"""measure_latency: result shape and invariants on trivial functions (no timing assertions that flake)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from costbench.data import Split
from costbench.measure.latency import latency_lock, measure_latency, staged_batches
from costbench.spec import ServeConfig

FAST = ServeConfig(batch_sizes=[1, 7], warmup=2, min_calls=662, min_seconds=0.03, rounds=3)


def _split(rows: int = 40) -> Split:
    return Split(
        numeric=torch.arange(rows, dtype=torch.float32).unsqueeze(1).repeat(1, 3),
        categorical=torch.zeros(rows, 2, dtype=torch.int64),
        items=torch.zeros(rows, 0, dtype=torch.int64),
        item_categories=torch.zeros(rows, 0, dtype=torch.int64),
        label=torch.zeros(rows),
    )


def _check_invariants(result: dict, serve: ServeConfig) -> None:
    assert set(result["batch_sizes"]) == {str(b) for b in serve.batch_sizes}
    for batch, stats in result["batch_sizes"].items():
        assert stats["n"] >= serve.min_calls
        assert stats["seconds"] >= serve.min_seconds
        assert len(stats["round_p50s_ms"]) == serve.rounds
        assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
        assert stats["p99_ms"] <= stats["p99_upper_ms"] <= stats["max_ms"]
        assert stats["throughput"] == pytest.approx(int(batch) / stats["mean_ms"] * 1000)
        assert stats["cold_ms"] > 0 and stats["warmup_calls"] >= 1 + serve.warmup
    probe = result["probe"]
    assert probe["before_ms"] > 0 and probe["after_ms"] > 0
    assert probe["drift"] == pytest.approx(abs(probe["after_ms"] - probe["before_ms"]) / probe["before_ms"])
    assert probe["noisy"] == (probe["drift"] > probe["threshold"])
    assert result["threads"] == torch.get_num_threads()
    assert result["lock_wait_s"] >= 0


def test_result_shape_and_invariants_on_cpu(tmp_path):
    seen: list[float] = []

    def fn(numeric, categorical, items, item_categories):
        seen.append(float(numeric[0, 0]))
        return numeric.sum(dim=1)

    result = measure_latency(fn, _split(), FAST, torch.device("cpu"), lock_path=tmp_path / "lock")
    _check_invariants(result, FAST)
    assert result["timer"] == "perf_counter_ns"
    assert result["percentile_method"] == "linear"
    # real rows of the split, cycling through several distinct batches
    assert set(seen) <= set(range(40)) and len(set(seen)) > 1
    assert result["batch_sizes"]["7"]["distinct_batches"] == 40 // 7


def test_batches_wrap_when_the_split_is_smaller_than_a_batch():
    (batch,) = staged_batches(_split(rows=5), 12, torch.device("cpu"))
    assert batch[0][:, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_exactly_min_calls_when_no_minimum_time(tmp_path):
    serve = ServeConfig(batch_sizes=[3], warmup=1, min_calls=1000, min_seconds=0, rounds=4)
    result = measure_latency(lambda *x: x[0], _split(), serve, "cpu", lock_path=tmp_path / "lock")
    assert result["batch_sizes"]["3"]["n"] == 1000


def test_lock_excludes_a_second_holder(tmp_path):
    path = tmp_path / "lock"
    held = threading.Event()

    def hold() -> None:
        with latency_lock(path):
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    events: list[str] = []
    result = measure_latency(lambda *x: x[0], _split(), FAST, "cpu", lock_path=path,
                             on_wait=lambda: events.append("waiting"), on_acquired=lambda: events.append("held"))
    thread.join()
    assert result["lock_wait_s"] >= 0.25  # flock blocks: a lower bound cannot flake
    assert events == ["waiting", "held"], "the executor is told when the wait starts and ends"


def test_a_free_lock_reports_no_wait(tmp_path):
    events: list[str] = []
    with latency_lock(tmp_path / "lock", on_wait=lambda: events.append("waiting")) as waited:
        assert waited < 0.25
    assert events == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_path_times_each_call_with_events(tmp_path):
    weight = torch.randn(3, 64, device="cuda")

    def fn(numeric, categorical, items, item_categories):
        return (numeric @ weight).relu().sum(dim=1)

    result = measure_latency(fn, _split(), FAST, torch.device("cuda"), lock_path=tmp_path / "lock")
    _check_invariants(result, FAST)
    assert result["timer"].startswith("cuda_event")


def test_rounds_visit_batch_sizes_round_robin_starting_one_later_each_round(tmp_path):
    serve = ServeConfig(batch_sizes=[1, 2, 3], warmup=1, min_calls=663, min_seconds=0, rounds=3)
    sizes: list[int] = []

    def fn(numeric, *rest):
        if not sizes or sizes[-1] != numeric.shape[0]:
            sizes.append(numeric.shape[0])
        return numeric

    measure_latency(fn, _split(), serve, "cpu", lock_path=tmp_path / "lock")
    warm_up, rounds = sizes[:3], sizes[3:]
    assert warm_up == [1, 2, 3]
    assert rounds == [1, 2, 3, 2, 3, 1, 3, 1, 2]


def test_probe_drift_over_threshold_marks_the_run_noisy(tmp_path, monkeypatch):
    from costbench.measure import latency

    probes = iter([2.0, 2.5])  # 25% slower after than before
    monkeypatch.setattr(latency, "gemm_probe_ms", lambda device, timed: next(probes))
    result = measure_latency(lambda *x: x[0], _split(), FAST, "cpu", lock_path=tmp_path / "lock")
    assert result["probe"]["drift"] == pytest.approx(0.25)
    assert result["probe"]["noisy"] is True
