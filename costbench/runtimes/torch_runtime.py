"""The PyTorch runtimes: ``eager`` and ``compile``, both through the precision policy's serving path
(cast, torchao / torch.ao int8, ``torch.compile`` with a dynamic batch dimension)."""

from __future__ import annotations

from typing import Any

import torch

from costbench.data import PreparedData, Split
from costbench.families.base import Fitted, ModelSize, Served
from costbench.precision import get_policy, param_bytes, serialized_bytes
from costbench.runtimes import Runtime
from costbench.spec import TrialConfig


def stage_tensors(device: torch.device) -> Any:
    """The torch runtime's inputs: the four input tensors of some rows, contiguous, on ``device``."""

    def stage(split: Split, rows: Any) -> tuple[torch.Tensor, ...]:
        return tuple(t[rows].contiguous().to(device) for t in split.inputs())

    return stage


class TorchRuntime(Runtime):
    """PyTorch itself, eager or compiled."""

    def __init__(self, name: str) -> None:
        self.name, self.compile = name, name == "compile"

    def skip_reason(self, cfg: TrialConfig, device: torch.device, family: str) -> str | None:
        if cfg.precision == "int8" and cfg.quantize.scheme in ("ort_dynamic", "ort_static"):
            return (f"quantize.scheme {cfg.quantize.scheme} is ONNX Runtime's int8 and needs serve.runtime: "
                    f"onnxruntime; "
                    f"serve.runtime {self.name} quantizes with dynamic, weight_only or legacy_dynamic")
        return get_policy(cfg.precision).skip_reason(device, family, cfg.quantize)

    def serve(self, fitted: Fitted, data: PreparedData, cfg: TrialConfig, device: torch.device) -> Served:
        stage = stage_tensors(device)
        example = stage(data.test, slice(0, cfg.serve.objective_batch_size))
        served = get_policy(cfg.precision).prepare_for_serving(fitted.model, example, device, cfg.quantize,
                                                               self.compile)
        size = ModelSize(params=fitted.params, param_bytes=param_bytes(served), model_bytes=serialized_bytes(served))
        return Served(predict=served.fn, stage=stage, size=size, info={"runtime": self.name, **served.info},
                      prepare_seconds=served.info.get("quantize_seconds") or 0.0,
                      compile_seconds=served.info.get("compile_seconds") or 0.0)


def runtime(name: str) -> TorchRuntime:
    return TorchRuntime(name)
