"""Precision policies on CPU: every precision trains and serves every family it supports, int8 is smaller
and as good as its fp32 twin, bf16 is as good as fp32, and what cannot run says why."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys

import pytest
import torch
from torch import nn

from costbench import precision
from costbench.data import PreparedData, Split
from costbench.data.load import load_data
from costbench.errors import TrialSkipped
from costbench.evaluate import evaluate
from costbench.model_presets import PRESETS, resolve_hparams
from costbench.models import build_model
from costbench.precision import CompileFailed, get_policy, param_bytes, serialized_bytes
from costbench.spec import DataConfig, EvalConfig, ModelConfig, QuantizeConfig, TrainConfig
from costbench.train import seed_everything, train_model
from tests.test_train import tiny_data

FAMILIES = tuple(PRESETS)  # the network families; the tree families are tested in test_trees.py
CPU = torch.device("cpu")
EAGER = QuantizeConfig(compile=False)  # compiling is tested once below; elsewhere it would only cost time
SCHEMES = ("dynamic", "weight_only", "legacy_dynamic")


def _train(precision_name: str, family: str, size: str, data, epochs: int = 2) -> nn.Module:
    seed_everything(0)
    policy = get_policy(precision_name)
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), data.schema)
    cfg = TrainConfig(epochs=epochs, batch_size=max(64, len(data.train) // 20), lr=0.005)  # 20 steps an epoch
    train_model(model, data, cfg, device=CPU,
                autocast=lambda: policy.autocast(CPU), grad_scaler=policy.grad_scaler(CPU))
    return model


def _serve(precision_name: str, model: nn.Module, data, quantize: QuantizeConfig = EAGER, compile: bool = False,
           example_rows: int = 8):
    example = data.test.inputs(slice(0, example_rows))
    return get_policy(precision_name).prepare_for_serving(model, example, CPU, quantize, compile)


def _auc(served, data) -> float:
    return evaluate(served.fn, data, EvalConfig(), CPU)["auc"]


@pytest.fixture(scope="module")
def small():
    return tiny_data(rows=1200)


@pytest.fixture(scope="module")
def larger():
    """The synthetic shoppers every sweep starts from, small enough for a test."""
    return load_data(DataConfig(rows=12000, seed=7), cache_dir=None)


@pytest.fixture(scope="module")
def mlp_m_fp32(larger):
    model = _train("fp32", "mlp", "m", larger)
    return model, _auc(_serve("fp32", copy.deepcopy(model), larger), larger)


# ------------------------------------------------------------------------------------- every family


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16", "int8"])
def test_each_precision_trains_and_serves_each_family_it_supports(name, family, small):
    reason = get_policy(name).skip_reason(CPU, family, EAGER)
    if reason is not None:
        # only a real kernel gap may excuse a combination: the same step must fail when run directly
        assert family in reason and name in reason
        policy = get_policy(name)
        model = build_model(resolve_hparams(ModelConfig(family=family, size="xs")), small.schema)
        with pytest.raises((NotImplementedError, RuntimeError)), policy.autocast(CPU):
            model(*small.train.inputs(slice(0, 4))).float().sum().backward()
        return
    served = _serve(name, _train(name, family, "xs", small), small)
    logits = served.fn(*small.test.inputs(slice(0, 5)))
    assert logits.shape == (5,) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert served.info["precision"] == name and served.info["compiled"] is False
    assert 0.5 < _auc(served, small) <= 1.0
    assert serialized_bytes(served) > 0 and param_bytes(served) > 0


@pytest.mark.parametrize("family", ["mlp", "lstm", "transformer"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_int8_schemes_record_what_they_quantized(scheme, family, small):
    model = _train("fp32", family, "xs", small)
    served = _serve("int8", model, small, QuantizeConfig(scheme=scheme, compile=False))
    info = served.info
    assert info["scheme"] == scheme and info["dtype"] == "int8" and info["quantize_seconds"] > 0
    assert info["linear_layers_quantized"] >= 2
    assert ("Embedding" in info["quantized_modules"]) == (scheme != "legacy_dynamic")
    recurrent_quantized = "LSTM" in info["quantized_modules"]
    assert recurrent_quantized == (scheme == "legacy_dynamic" and family == "lstm")
    if family == "lstm" and scheme != "legacy_dynamic":  # torchao leaves the LSTM in float, and says so
        assert info["float_weight_modules"]["LSTM"] == 1
    assert torch.isfinite(served.fn(*small.test.inputs(slice(0, 3)))).all()


# ------------------------------------------------------------------------------------- quality and size


@pytest.mark.parametrize("scheme", SCHEMES)
def test_int8_mlp_m_is_3x_smaller_and_as_good_as_its_fp32_twin(scheme, mlp_m_fp32, larger):
    model, fp32_auc = mlp_m_fp32
    fp32 = _serve("fp32", copy.deepcopy(model), larger)
    int8 = _serve("int8", copy.deepcopy(model), larger, QuantizeConfig(scheme=scheme, compile=False))
    assert serialized_bytes(fp32) >= 3 * serialized_bytes(int8)
    assert param_bytes(fp32) >= 3 * param_bytes(int8)
    assert fp32_auc > 0.7  # the twin learned something, so "within 0.01" means something
    assert abs(_auc(int8, larger) - fp32_auc) <= 0.01


def test_bf16_trained_and_served_is_as_good_as_fp32(larger):
    fp32_auc = _auc(_serve("fp32", _train("fp32", "mlp", "s", larger), larger), larger)
    bf16 = _serve("bf16", _train("bf16", "mlp", "s", larger), larger)
    assert next(bf16.module.parameters()).dtype == torch.bfloat16
    assert abs(_auc(bf16, larger) - fp32_auc) <= 0.01


def test_param_bytes_count_each_dtype_at_its_width(small):
    model = build_model(resolve_hparams(ModelConfig(family="mlp", size="s")), small.schema)
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert param_bytes(_serve("fp32", copy.deepcopy(model), small)) == 4 * n
    assert param_bytes(_serve("bf16", copy.deepcopy(model), small)) == 2 * n



@pytest.mark.parametrize(("scheme", "expected"), [
    # int8 weights + per-row fp32 scale and int8 zero point + fp32 bias
    ("dynamic", 256 * 64 + 256 * 4 + 256 + 256 * 4),
    ("weight_only", 256 * 64 + 256 * 4 + 256 + 256 * 4),
    # per-tensor int8 weights + fp32 bias + the module's fp32 scale and int64 zero point
    ("legacy_dynamic", 256 * 64 + 256 * 4 + 4 + 8),
])
def test_param_bytes_count_int8_weights_at_one_byte_with_their_scales(scheme, expected):
    served = get_policy("int8").prepare_for_serving(nn.Sequential(nn.Linear(64, 256)), (), CPU,
                                                    QuantizeConfig(scheme=scheme, compile=False), False)
    assert param_bytes(served) == expected


def test_half_precision_serving_casts_only_float_inputs(small):
    served = _serve("fp16", build_model(resolve_hparams(ModelConfig(family="gru", size="xs")), small.schema), small)
    assert next(served.module.parameters()).dtype == torch.float16
    assert served.fn(*small.test.inputs(slice(0, 2))).dtype == torch.float32  # ids reach nn.Embedding as int64


# ------------------------------------------------------------------------------------- skip reasons


def test_legacy_int8_on_cuda_is_a_skip_reason():
    reason = get_policy("int8").skip_reason(torch.device("cuda"), "mlp", QuantizeConfig(scheme="legacy_dynamic"))
    assert "no CUDA kernels" in reason and "dynamic or weight_only" in reason


class _NoHalfMatmul(nn.Module):
    """Stands in for a build without a half kernel: fails the way torch does for a missing one."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, numeric, categorical, items, item_categories):
        if torch.get_autocast_dtype("cpu") == torch.float16 and torch.is_autocast_enabled("cpu"):
            raise NotImplementedError("\"addmm_impl_cpu_\" not implemented for 'Half'")
        return self.linear(numeric).squeeze(-1)


class _NothingToQuantize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, numeric, categorical, items, item_categories):
        return (numeric * self.scale).sum(1)


@pytest.fixture
def fake_family(monkeypatch, small):
    """Make the probe build ``module`` for the family name 'fake'."""
    def install(module: nn.Module) -> None:
        monkeypatch.setattr(precision, "_tiny_model", lambda family, device: (module, small.train.inputs(slice(0, 4))))
        precision._probe.cache_clear()

    yield install
    precision._probe.cache_clear()


def test_a_missing_half_kernel_is_a_skip_reason_naming_the_op(fake_family):
    fake_family(_NoHalfMatmul())
    reason = get_policy("fp16").skip_reason(CPU, "fake", QuantizeConfig())
    assert reason.startswith("fp16 on cpu cannot run fake")
    assert "\"addmm_impl_cpu_\" not implemented for 'Half'" in reason and "_NoHalfMatmul" in reason
    assert get_policy("fp32").skip_reason(CPU, "fake", QuantizeConfig()) is None


def test_probing_leaves_the_random_state_alone():
    precision._probe.cache_clear()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    assert get_policy("bf16").skip_reason(CPU, "mlp", QuantizeConfig()) is None
    assert torch.equal(torch.rand(3), expected)


def test_int8_with_nothing_to_quantize_is_refused(fake_family, small):
    fake_family(_NothingToQuantize())
    assert get_policy("int8").skip_reason(CPU, "fake", EAGER) == \
        "int8 dynamic: no nn.Linear/nn.Embedding layers to quantize"
    with pytest.raises(TrialSkipped, match=r"legacy_dynamic: no nn\.Linear"):
        _serve("int8", _NothingToQuantize(), small, QuantizeConfig(scheme="legacy_dynamic"))


def test_fp16_lstm_probe_tells_the_truth_about_this_torch():
    reason = get_policy("fp16").skip_reason(CPU, "lstm", QuantizeConfig())
    lstm = nn.LSTM(4, 8, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            out, _ = lstm(torch.randn(3, 5, 4))
        out.float().sum().backward()
        works = True
    except RuntimeError:
        works = False
    assert (reason is None) == works
    if reason is not None:
        assert "in LSTM" in reason


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="allowed: fp32, bf16, fp16, int8"):
        get_policy("fp8")


# ------------------------------------------------------------------------------------- compile


def _without_sequences(data: PreparedData) -> PreparedData:
    """The same rows as tabular data: [n, 0] sequence tensors, as a CSV source gives them."""
    def strip(split: Split) -> Split:
        return dataclasses.replace(split, items=split.items[:, :0].contiguous(),
                                   item_categories=split.item_categories[:, :0].contiguous())

    schema = dataclasses.replace(data.schema, sequence_length=0)
    return dataclasses.replace(data, schema=schema, train=strip(data.train), val=strip(data.val),
                               test=strip(data.test))


@pytest.mark.parametrize(("name", "family", "sequences"), [
    ("int8", "mlp", True), ("int8", "mlp", False), ("int8", "lstm", True), ("bf16", "mlp", True)])
def test_served_model_is_compiled_once_for_every_batch_size(name, family, sequences, small):
    """int8 (torchao) compiles by default; other precisions when serve.compile is asked for."""
    data = small if sequences else _without_sequences(small)
    model = _train("fp32", family, "xs", data)
    eager = _serve(name, copy.deepcopy(model), data)
    # the trial passes its objective batch as the example: 1 row by default
    compiled = _serve(name, model, data, QuantizeConfig(), compile=name != "int8", example_rows=1)
    assert compiled.info["compiled"] is True and compiled.info["compile_seconds"] > 0
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    for rows in (1, 3, 64, 1):
        inputs = tuple(t.clone() for t in data.test.inputs(slice(0, rows)))
        tolerance = 1e-4 if name == "int8" else 2e-2  # bf16 kernels may round differently once fused
        torch.testing.assert_close(compiled.fn(*inputs), eager.fn(*inputs), atol=tolerance, rtol=tolerance)
    assert torch._dynamo.utils.counters["frames"]["ok"] == frames  # no compilation left for serving time


def test_a_compile_failure_fails_when_asked_for_and_falls_back_when_defaulted(monkeypatch, small):
    def broken(*_args, **_kwargs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(torch, "compile", broken)
    model = build_model(resolve_hparams(ModelConfig(family="mlp", size="xs")), small.schema)
    with pytest.raises(CompileFailed, match=r"serve\.compile: torch\.compile failed for fp32 .*inductor exploded"):
        _serve("fp32", copy.deepcopy(model), small, compile=True)
    served = _serve("int8", model, small, QuantizeConfig())
    assert served.info["compiled"] is False and "inductor exploded" in served.info["compile_error"]
    assert any("served eagerly" in note for note in served.info["notes"])


def test_torchao_import_noise_stays_out_of_the_terminal():
    code = ("import logging; from costbench import precision; precision._torchao(); "
            "logging.getLogger('torchao').warning('Failed to quantize: a real problem')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "Failed to load" not in result.stderr and "register_constant" not in result.stderr
    assert "a real problem" in result.stderr  # anything else torchao says still reaches the user
