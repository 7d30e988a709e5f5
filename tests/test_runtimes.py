"""serve.runtime: the spellings the sweep file accepts, and the ONNX Runtime path against eager PyTorch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from costbench.spec import QuantizeConfig, ServeConfig, TrialConfig

ort = pytest.importorskip("onnxruntime", reason='pip install "costbench[serve]"')
CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------------ spec


def test_old_compile_flag_is_the_compile_runtime_and_the_same_trial() -> None:
    old = ServeConfig.model_validate({"compile": True})
    new = ServeConfig.model_validate({"runtime": "compile"})
    assert old.runtime == "compile" and old == new
    assert ServeConfig().runtime == "eager" and ServeConfig().compile is False


def test_compile_flag_with_onnxruntime_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"serve\.compile: true contradicts serve\.runtime: onnxruntime; drop "):
        ServeConfig.model_validate({"compile": True, "runtime": "onnxruntime"})


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match=r"eager.*compile.*onnxruntime"):
        ServeConfig.model_validate({"runtime": "tensorrt"})


# ------------------------------------------------------------------------------------------ skips


@pytest.mark.parametrize(("runtime", "precision", "scheme", "words"), [
    ("onnxruntime", "bf16", "dynamic", "serves fp32 and int8 (quantize.scheme ort_dynamic or ort_static) only"),
    ("onnxruntime", "int8", "dynamic", "under serve.runtime onnxruntime write quantize.scheme: ort_dynamic or "
                                       "ort_static"),
    ("eager", "int8", "ort_dynamic", "ort_dynamic is ONNX Runtime's int8 and needs serve.runtime: onnxruntime"),
    ("compile", "int8", "ort_static", "ort_static is ONNX Runtime's int8 and needs serve.runtime: onnxruntime"),
])
def test_mixed_up_schemes_are_skipped_with_the_fix(runtime, precision, scheme, words) -> None:
    from costbench.runtimes import get_runtime

    cfg = TrialConfig(serve=ServeConfig(runtime=runtime), precision=precision, quantize=QuantizeConfig(scheme=scheme))
    assert words in get_runtime(runtime).skip_reason(cfg, CPU, "mlp")


def test_missing_package_says_how_to_install(monkeypatch) -> None:
    import importlib.util

    from costbench.runtimes import get_runtime

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    reason = get_runtime("onnxruntime").skip_reason(TrialConfig(serve=ServeConfig(runtime="onnxruntime")), CPU, "mlp")
    assert reason == 'serve.runtime onnxruntime needs onnx: pip install "costbench[serve]"'


# ------------------------------------------------------------------------------------------ serving


@pytest.fixture(scope="module")
def small():
    from costbench.data.load import load_data
    from costbench.spec import DataConfig

    return load_data(DataConfig(rows=600, sequence_length=3, n_items=50, n_categories=5), None)


def _fitted(family: str, data, num_embedding: str = "auto", size: str = "xs"):
    from costbench.families import FitSummary, Fitted
    from costbench.model_presets import resolve_hparams
    from costbench.models import build_model, count_params
    from costbench.spec import ModelConfig

    torch.manual_seed(0)
    config = ModelConfig(family=family, size=size, num_embedding=num_embedding)
    model = build_model(resolve_hparams(config), data.schema).eval()
    return Fitted(model=model, hparams={}, params=count_params(model), summary=FitSummary(None, None, "test"))


@pytest.mark.parametrize(("family", "num_embedding"), [("mlp", "auto"), ("mlp", "periodic"), ("dcn", "auto"),
                                                       ("gru", "auto"), ("transformer", "auto")])
def test_onnxruntime_scores_every_batch_size_like_eager_pytorch(family, num_embedding, small) -> None:
    from costbench.runtimes import get_runtime

    cfg = TrialConfig(serve=ServeConfig(runtime="onnxruntime"), threads=1)
    fitted = _fitted(family, small, num_embedding)
    eager = get_runtime("eager").serve(copy.deepcopy(fitted), small, cfg, CPU)
    served = get_runtime("onnxruntime").serve(fitted, small, cfg, CPU)
    assert served.info["providers"] == ["CPUExecutionProvider"]
    assert served.info["intra_op_threads"] == torch.get_num_threads() and served.info["inter_op_threads"] == 1
    for rows in (slice(0, 1), slice(3, 10), slice(0, 64)):
        got = served.predict(*served.stage(small.test, rows))
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        want = eager.predict(*eager.stage(small.test, rows)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    assert served.size.model_bytes > served.size.param_bytes >= 4 * 0.9 * fitted.params


@pytest.mark.parametrize(("family", "size"), [("mlp", "xs"), ("logreg", "m")])
def test_piecewise_bins_export_as_gemms_not_einsum_and_broadcasts(family, size, small, tmp_path) -> None:
    """The export form ONNX Runtime runs fast (benchmarks/ort_profile.py): after ORT's constant folding, the
    per-column maps are one GEMM and no [n, c, 1] - [c, b] or [n, L, d] x [n, L, 1] broadcast (an elementwise
    op over 3 or more axes) is left to run per call; logistic regression's additive bins too."""
    import onnx

    from costbench.runtimes.onnx import export_onnx

    graph = export_onnx(_fitted(family, small, size=size).model, tuple(t[:2] for t in small.test.inputs()))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # folds constants only
    options.optimized_model_filepath = str(tmp_path / "folded.onnx")
    ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    folded = onnx.shape_inference.infer_shapes(onnx.load(options.optimized_model_filepath))
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in folded.graph.value_info}
    ops = {node.op_type for node in folded.graph.node}
    assert "Einsum" not in ops and "Gemm" in ops
    assert not [n.name for n in folded.graph.node
                if n.op_type in ("Mul", "Sub", "Add", "Div", "Clip") and ranks.get(n.output[0], 0) >= 3]


def test_ort_dynamic_int8_quantizes_the_matmuls_and_weighs_less(small) -> None:
    from costbench.runtimes import get_runtime

    fitted = _fitted("mlp", small)
    fp32 = get_runtime("onnxruntime").serve(copy.deepcopy(fitted), small, TrialConfig(), CPU)
    cfg = TrialConfig(precision="int8", quantize=QuantizeConfig(scheme="ort_dynamic"))
    int8 = get_runtime("onnxruntime").serve(fitted, small, cfg, CPU)
    assert int8.info["scheme"] == "ort_dynamic" and int8.info["quantized_ops"]["MatMulInteger"] >= 2
    # the float products left are the feature block's (the numeric embedding's exact column copy, the bag sum)
    assert int8.info["float_matmul_nodes"]
    assert all(name.startswith("/features/") for name in int8.info["float_matmul_nodes"])
    # every nn.Linear weight is stored in 1 byte instead of 4 (plus a scale and zero point per tensor)
    linear_weights = sum(m.weight.numel() for m in fitted.model.modules() if isinstance(m, torch.nn.Linear))
    assert fp32.size.param_bytes - int8.size.param_bytes >= 3 * linear_weights - 64
    rows = slice(0, 64)
    got, want = int8.predict(*int8.stage(small.test, rows)), fp32.predict(*fp32.stage(small.test, rows))
    assert np.corrcoef(got, want)[0, 1] > 0.99, "int8 scores track fp32's"


def test_ort_static_int8_is_calibrated_on_training_rows_and_runs_int8_kernels(small, tmp_path) -> None:
    from costbench.runtimes import get_runtime
    from costbench.runtimes.onnx_int8 import CALIBRATION_ROWS

    fitted = _fitted("mlp", small)
    fp32 = get_runtime("onnxruntime").serve(copy.deepcopy(fitted), small, TrialConfig(), CPU)
    cfg = TrialConfig(precision="int8", quantize=QuantizeConfig(scheme="ort_static"))
    int8 = get_runtime("onnxruntime").serve(fitted, small, cfg, CPU)
    info = int8.info
    assert info["scheme"] == "ort_static" and info["calibration_split"] == "train"
    assert info["calibration_rows"] == min(CALIBRATION_ROWS, len(small.train))
    assert info["quantized_ops"]["QuantizeLinear"] >= 2 and "DynamicQuantizeLinear" not in info["quantized_ops"]
    rows = slice(0, 64)
    got, want = int8.predict(*int8.stage(small.test, rows)), fp32.predict(*fp32.stage(small.test, rows))
    assert np.corrcoef(got, want)[0, 1] > 0.99, "static int8 scores track fp32's"


def test_calibration_rows_are_a_seeded_sample_of_the_training_rows() -> None:
    from costbench.runtimes.onnx_int8 import calibration_rows

    rows = calibration_rows(10_000, 512)
    assert len(rows) == 512 == len(set(rows.tolist())) and int(rows.max()) < 10_000
    assert torch.equal(rows, calibration_rows(10_000, 512)) and len(calibration_rows(100, 512)) == 100


def test_an_export_failure_is_a_skip_with_the_reason(small, monkeypatch) -> None:
    from costbench.errors import TrialSkipped
    from costbench.runtimes import get_runtime

    def broken(*_a, **_k):
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(TrialSkipped, match=r"torch\.onnx\.export failed for .*operator foo"):
        get_runtime("onnxruntime").serve(_fitted("mlp", small), small, TrialConfig(), CPU)


# ------------------------------------------------------------------------------------------ a sweep

SWEEP = """\
name: runtimes
data: {rows: 3000, sequence_length: 4}
model: {family: mlp, size: xs}
train: {epochs: 1, batch_size: 256}
serve: {batch_sizes: [1, 64], warmup: 2, min_calls: 662, min_seconds: 0, rounds: 1}
threads: 1
grid:
  serve.runtime: [eager, onnxruntime]
"""


@pytest.mark.slow
def test_a_sweep_over_runtimes_gives_both_records_with_the_same_auc(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SWEEP)
    done = subprocess.run([sys.executable, "-m", "costbench", "sweep", str(tmp_path / "s.yaml"), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    by_runtime = {r["axes"]["serve.runtime"]: r for r in records}
    assert set(by_runtime) == {"eager", "onnxruntime"}
    assert all(r["status"] == "ok" for r in records), [r.get("reason") for r in records]
    eager, ort_ = by_runtime["eager"], by_runtime["onnxruntime"]
    assert ort_["details"]["precision"]["runtime"] == "onnxruntime"
    assert eager["details"]["precision"]["runtime"] == "eager"
    assert abs(eager["metrics"]["auc"] - ort_["metrics"]["auc"]) < 1e-4
    assert ort_["metrics"]["p50_ms@64"] > 0
