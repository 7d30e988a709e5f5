"""run_trial end to end in-process: the record a sweep writes for one grid point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from costbench.record import is_known_metric
from costbench.spec import load_sweep
from costbench.trial import run_trial

TINY = """\
name: tiny
data: {rows: 3000, sequence_length: 4}
train: {epochs: 1, batch_size: 256}
serve: {batch_sizes: [1, 16], warmup: 2, min_calls: 662, min_seconds: 0, rounds: 3}
threads: 1
"""


def trial_for(tmp_path: Path, *overrides: str) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(TINY)
    sweep = load_sweep(path, list(overrides), cache_dir=str(tmp_path / "cache"))
    assert len(sweep.trials) == 1
    return sweep.trials[0].to_json()


def test_ok_record_carries_every_headline_metric(tmp_path: Path) -> None:
    record = run_trial(trial_for(tmp_path, "model.size=xs"))
    assert record["status"] == "ok", record["reason"]
    metrics = record["metrics"]
    for name in ("auc", "bayes_auc", "params", "model_bytes", "train_seconds", "train_cost_usd",
                 "train_peak_mem_mb", "serve_peak_mem_mb", "p50_ms", "p99_ms", "throughput",
                 "serve_cost_per_million_usd", "p99_ms@16", "probe_drift", "round_spread"):
        assert name in metrics, name
    assert all(is_known_metric(name) for name in metrics), [n for n in metrics if not is_known_metric(n)]
    assert 0.5 < metrics["auc"] <= 1.0
    assert metrics["p50_ms"] <= metrics["p99_ms"]
    assert metrics["p50_ms"] == metrics["p50_ms@1"], "headline latency is at the first batch size"
    assert metrics["train_cost_usd"] == pytest.approx(metrics["train_device_hours"] * 0.05)
    assert record["details"]["latency"]["batch_sizes"]["1"]["n"] >= 662
    assert metrics["train_energy_j"] is None or metrics["train_energy_j"] > 0


def test_cuda_trial_without_a_gpu_is_skipped_not_moved(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    record = run_trial(trial_for(tmp_path, "device=cuda"))
    assert record["status"] == "skipped"
    assert "CUDA is not available" in record["reason"]
    assert record["metrics"] == {}


def test_precision_without_kernels_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """fp16 LSTM training has no CPU kernel in torch 2.13: the record says so instead of running fp32."""
    record = run_trial(trial_for(tmp_path, "model.family=lstm", "model.size=xs", "precision=fp16"))
    if record["status"] == "ok":
        pytest.skip("this torch build has fp16 LSTM kernels on CPU")
    assert record["status"] == "skipped"
    assert "fp16" in record["reason"] and "lstm" in record["reason"].lower()
