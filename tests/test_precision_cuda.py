"""Every precision on a CUDA GPU: trains, serves, and says what ran. Skipped cleanly on a machine without one."""

from __future__ import annotations

import pytest
import torch

from costbench.evaluate import evaluate
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.precision import get_policy, param_bytes, serialized_bytes
from costbench.spec import EvalConfig, ModelConfig, QuantizeConfig, TrainConfig
from costbench.train import seed_everything, train_model
from tests.test_train import tiny_data

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA not available)")]

CUDA = torch.device("cuda")
EAGER = QuantizeConfig(compile=False)


@pytest.fixture(scope="module")
def data():
    return tiny_data(rows=4000)


def _train_and_serve(name: str, family: str, data, quantize: QuantizeConfig = EAGER, compile: bool = False):
    seed_everything(0)
    policy = get_policy(name)
    assert policy.skip_reason(CUDA, family, quantize) is None
    model = build_model(resolve_hparams(ModelConfig(family=family, size="xs")), data.schema)
    scaler = policy.grad_scaler(CUDA)
    assert (scaler is not None) == (name == "fp16")
    train_model(model, data, TrainConfig(epochs=2, batch_size=200, lr=0.005), device=CUDA,
                autocast=lambda: policy.autocast(CUDA), grad_scaler=scaler)
    example = tuple(t.to(CUDA) for t in data.test.inputs(slice(0, 16)))
    return policy.prepare_for_serving(model, example, CUDA, quantize, compile)


@pytest.mark.parametrize("family", ["mlp", "lstm", "transformer"])
@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16", "int8"])
def test_each_precision_trains_and_serves_on_cuda(name, family, data):
    served = _train_and_serve(name, family, data)
    logits = served.fn(*(t.to(CUDA) for t in data.test.inputs(slice(0, 5))))
    assert logits.device.type == "cuda" and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert served.info["precision"] == name
    assert 0.5 < evaluate(served.fn, data, EvalConfig(), CUDA)["auc"] <= 1.0
    assert serialized_bytes(served) > 0 and param_bytes(served) > 0


@pytest.mark.parametrize("scheme", ["dynamic", "weight_only"])
def test_torchao_int8_on_cuda_quantizes_and_compiles(scheme, data):
    served = _train_and_serve("int8", "mlp", data, QuantizeConfig(scheme=scheme))
    assert served.info["scheme"] == scheme and served.info["linear_layers_quantized"] >= 2
    assert served.info["compiled"] is True, served.info.get("compile_error")
    for rows in (1, 7):
        assert torch.isfinite(served.fn(*(t.to(CUDA) for t in data.test.inputs(slice(0, rows))))).all()
