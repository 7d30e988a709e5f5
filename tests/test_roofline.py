"""The roofline: FLOPs per row counted from a model's shapes, the measured GEMM peak cached in the environment,
and achieved GFLOP/s and flops_efficiency in the record and the report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from costbench.data import Schema
from costbench.families import Served
from costbench.families.base import ModelSize
from costbench.flops import forward_flops
from costbench.measure import roofline
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.record import is_known_metric
from costbench.record_metrics import TrialMeasurements, trial_metrics
from costbench.report.build import build_report
from costbench.report.machine import machine_lines
from costbench.report.table import trials_table
from costbench.spec import ModelConfig, ServeConfig, TrialConfig
from tests import rundirs

SCHEMA = Schema(numeric_names=["a", "b", "c"], categorical_names=["d"], cardinalities=[5], sequence_length=4,
                n_items=20, n_item_categories=6)


def test_flops_of_a_small_mlp_are_its_matrix_products_by_hand() -> None:
    model = build_model(resolve_hparams(ModelConfig(family="mlp", size="s")), SCHEMA)  # hidden 64, 2 layers, emb 8
    # piecewise numeric embedding: 3 columns x 16 bins x 8 (per-column maps); features = 3*8 + 8 (d) + 8 (bag) = 40
    by_hand = 3 * 16 * 8 + 40 * 64 + 64 * 64 + 64 * 1
    assert forward_flops(model) == 2 * by_hand
    assert forward_flops(nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 1))) == 2 * (40 + 4)


def test_models_with_uncounted_products_have_no_flop_count() -> None:
    assert forward_flops(build_model(resolve_hparams(ModelConfig(family="gru", size="xs")), SCHEMA)) is None
    assert forward_flops(build_model(resolve_hparams(ModelConfig(family="transformer", size="xs")), SCHEMA)) is None


def _stats(p50_ms: float) -> dict:
    return {"p50_ms": p50_ms, "p90_ms": p50_ms, "p99_ms": p50_ms, "p99_upper_ms": p50_ms, "mean_ms": p50_ms,
            "cold_ms": p50_ms, "throughput": 1.0, "energy_per_1k_j": None, "round_p50s_ms": [p50_ms]}


@pytest.mark.parametrize(("precision", "peak"), [("fp32", 50.0), ("int8", 400.0)])
def test_efficiency_is_achieved_over_the_peak_of_the_precision_served(precision, peak) -> None:
    cfg = TrialConfig(precision=precision, serve=ServeConfig(batch_sizes=[1, 256]))
    served = Served(predict=print, stage=print, size=ModelSize(1, 4, 4), flops_per_row=1_000_000)
    fake_peak = {"fp32": {"gflops": 50.0}, "int8": {"gflops": 400.0}}
    m = TrialMeasurements(cfg=cfg, device=torch.device("cpu"), threads=1, data=SimpleNamespace(bayes_auc=None),
                          served=served, latency={"batch_sizes": {"1": _stats(0.1), "256": _stats(20.0)},
                                                  "probe": {"drift": 0.0}}, gemm_peak=fake_peak)
    metrics = trial_metrics(m)
    assert metrics["gflops@256"] == pytest.approx(1e6 * 256 / 0.020 / 1e9)  # 12.8
    assert metrics["flops_efficiency@256"] == pytest.approx(12.8 / peak)
    assert "gflops@1" not in metrics and "gflops" not in metrics  # batch 1 is overhead: no GFLOP/s
    assert all(is_known_metric(name) for name in metrics)
    m.device = torch.device("meta")  # not the CPU the peak was measured on
    assert trial_metrics(m)["flops_efficiency@256"] is None and trial_metrics(m)["gflops@256"] is not None


def test_the_environment_holds_the_peak_measured_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from costbench.measure.environment import trial_environment

    calls = []
    real = roofline.gemm_peaks

    def counted(threads: int) -> dict:
        calls.append(threads)
        return real(threads, size=64, repeats=2)

    monkeypatch.setattr(roofline, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(roofline, "gemm_peaks", counted)
    roofline._MEASURED.clear()
    try:
        env = trial_environment()
        peak = env["gemm_peak"]
        assert peak["threads"] == torch.get_num_threads() and peak["fp32"]["gflops"] > 0
        assert peak["fp32"]["kernel"] in peak["fp32"]["by_kernel"]
        assert any(name.startswith("torch.mm") for name in peak["fp32"]["by_kernel"])
        assert peak["fp32"]["gflops"] == max(peak["fp32"]["by_kernel"].values())
        roofline._MEASURED.clear()  # a new process: reads the file, measures nothing
        assert trial_environment()["gemm_peak"] == peak and calls == [torch.get_num_threads()]
        assert len(list(tmp_path.glob("costbench-gemm-peak-*.json"))) == 1
    finally:
        roofline._MEASURED.clear()


def test_the_report_shows_efficiency_and_the_peak(tmp_path: Path) -> None:
    env = {**rundirs.ENV, "gemm_peak": {"threads": 1, "fp32": {"gflops": 96.5, "kernel": "onnxruntime MatMul"},
                                        "int8": {"gflops": 380.0, "kernel": "torch._int_mm"}}}
    records = [rundirs.record(name, {"model.size": name}, metrics=rundirs.metrics(
        0.8, 1.0, **{"gflops@64": g, "flops_efficiency@64": g / 96.5})) for name, g in (("s", 20.0), ("m", 48.25))]
    report = build_report(rundirs.write(tmp_path / "run", records, envs={"e0e0e0e0e0e0": env}))
    table = trials_table(report)
    column = table.headers.index("of GEMM peak @64 (%)")
    assert sorted(row[column] for row in table.cells) == ["21", "50"]
    assert "achieved @64 (GFLOP/s)" in table.headers
    assert any("GEMM peak fp32 96 GFLOP/s (onnxruntime MatMul), int8 380 GOP/s (torch._int_mm) on 1 thread(s)" in line
               for line in machine_lines(report))
